"""Root fixtures.

- ``app`` / ``client`` (flaskr style): the real ``create_app`` in-process with an
  in-memory audit trail (``audit``), authentication off. Milliseconds, no PostgreSQL.
  A test needing other settings overrides the ``settings`` fixture in its module.
- PostgreSQL comes from ``tests/pg.py``; it starts only when a test asks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import PROJECT_ROOT
from service.app import create_app
from service.config import Settings
from service.knowledge import Knowledge
from testkit.fake_audit import FakeAuditTrail
from tests.pg import (  # noqa: F401  (fixtures)
    audit_trail,
    database_url,
    make_database,
    pg_server_url,
    pytest_terminal_summary,
)

#: The host the in-process client calls, so requests match openapi.yaml's server URL.
TEST_HOST = "127.0.0.1:8080"


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    """The repository's rules, questionnaires and terminology, loaded once."""
    return Knowledge.load(
        PROJECT_ROOT / "rules", PROJECT_ROOT / "questionnaires", PROJECT_ROOT / "terminology"
    )


@pytest.fixture
def settings() -> Settings:
    """What ``make run`` uses, without a database: auth off, short fhirServer timeout."""
    return Settings(auth_enabled=False, public_url=f"http://{TEST_HOST}", fhir_timeout=2.0)


@pytest.fixture
def audit() -> FakeAuditTrail:
    return FakeAuditTrail()


@pytest.fixture
def app(settings: Settings, audit: FakeAuditTrail, knowledge: Knowledge) -> Iterator[Flask]:
    app = create_app(settings, audit=audit, knowledge=knowledge)
    app.config["SERVER_NAME"] = TEST_HOST  # the test client's host
    yield app
    audit.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
