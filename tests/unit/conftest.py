"""Shared fixtures of the clinical unit tests: the real knowledge folders, loaded once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # for ``import casekit``

from service import PROJECT_ROOT  # noqa: E402
from service.knowledge import Knowledge  # noqa: E402


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return Knowledge.load(
        PROJECT_ROOT / "rules", PROJECT_ROOT / "questionnaires", PROJECT_ROOT / "terminology"
    )
