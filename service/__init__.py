"""Back-pain red-flag CDS Hooks 2.0 service."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root, where the clinical data folders live in a source checkout.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
