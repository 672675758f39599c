"""The tests' PostgreSQL fixtures; where the server comes from is ``testkit.pg``.

Every fixture is lazy: a test that does not ask for a database never starts one.
A run with no PostgreSQL fails with a message saying what to provide (never a skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.audit.factory import create_audit_trail
from service.audit.spooling import SpoolingAuditTrail
from service.config import Settings
from testkit.pg import DatabaseFactory, NoPostgres, find_postgres

#: where the run's PostgreSQL came from, for the closing summary
USED_POSTGRES = pytest.StashKey[str]()

# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """Server-level URL (connect to its ``postgres`` database; create your own inside)."""
    try:
        with find_postgres() as found:
            pytestconfig.stash[USED_POSTGRES] = found.describe()
            yield found.url
    except NoPostgres as exc:
        pytest.fail(str(exc), pytrace=False)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line saying which PostgreSQL the run used (``make test`` prints it)."""
    terminalreporter.write_line(config.stash.get(USED_POSTGRES, "PostgreSQL: not used by this run"))


@pytest.fixture(scope="session")
def make_database(pg_server_url: str) -> Iterator[DatabaseFactory]:
    """``make_database(migrated=True) -> url``: a fresh database for tests needing isolation."""
    factory = DatabaseFactory(pg_server_url)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(make_database: DatabaseFactory) -> str:
    """The run's shared database, migrated to head. Tests must not assume it is empty."""
    return make_database()


@pytest.fixture
def audit_trail(database_url: str, tmp_path: Path) -> Iterator[SpoolingAuditTrail]:
    """A started ``SpoolingAuditTrail`` on ``database_url`` with its own spool directory."""
    settings = Settings(
        database_url=database_url, spool_dir=tmp_path / "spool", spool_drain_interval=0.2
    )
    trail = create_audit_trail(settings)
    yield trail
    trail.close()
