"""The tests' PostgreSQL fixtures; where the server comes from is ``testkit.pg``.

Every fixture is lazy: a test that does not ask for a database never starts one.
A run with no PostgreSQL fails with a message saying what to provide (never a skip).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.audit.factory import create_audit_trail
from service.audit.spooling import SpoolingAuditTrail
from service.config import Settings
from testkit.pg import DatabaseFactory, NoPostgres, postgres_server

# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Server-level URL (connect to its ``postgres`` database; create your own inside)."""
    try:
        with postgres_server() as url:
            yield url
    except NoPostgres as exc:
        pytest.fail(str(exc), pytrace=False)


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
