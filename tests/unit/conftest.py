"""Shared fixtures of the clinical unit tests: the real knowledge folders, loaded once."""

from __future__ import annotations

import pytest

from service import PROJECT_ROOT
from service.knowledge import Knowledge


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return Knowledge.load(
        PROJECT_ROOT / "rules", PROJECT_ROOT / "questionnaires", PROJECT_ROOT / "terminology"
    )
