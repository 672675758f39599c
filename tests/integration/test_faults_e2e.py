"""Issue 11, audit faults reproduced against real ``backpain-cds serve`` processes.

Real gunicorn workers, real PostgreSQL (a database of its own per test, sometimes
behind ``TcpProxy`` so the test can cut it), real HTTP.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.e2e.server import ServerProcess, start_server
from tests.integration.test_timeouts import table_locked
from tests.pg import DatabaseFactory

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PATIENT_VIEW = "/cds-services/backpain-redflags-patient-view"
#: generous bound on every wait: the behaviour under test takes well under a second
BOUND_SECONDS = 30.0


def sample_request() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "patient-view-request.json").read_text())
    data["hookInstance"] = str(uuid.uuid4())
    return data


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {BOUND_SECONDS}s: {what}")
        time.sleep(0.1)


def readiness(server: ServerProcess) -> int:
    return requests.get(server.url("/readyz"), timeout=5).status_code


def count(url: str, sql: str, **params: Any) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def test_a_locked_invocation_table_neither_stalls_calls_nor_hides_from_readyz(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    """Finding 3: ``LOCK TABLE invocation`` held made each call wait while /readyz said ready."""
    url = make_database()
    server = start_server(
        tmp_path, {"DATABASE_URL": url, "CDS_AUTH": "off", "AUDIT_SPOOL_DRAIN_SECONDS": "0.2"}
    )
    try:
        body = sample_request()
        with table_locked(url, "invocation"):
            try:
                answered = requests.post(server.url(PATIENT_VIEW), json=body, timeout=BOUND_SECONDS)
            except requests.Timeout:
                pytest.fail("the hook call waited for the table lock")
            ready_while_locked = readiness(server)
        assert answered.status_code == 200
        assert ready_while_locked == 503
        wait_until(lambda: readiness(server) == 200, "ready again once the lock is gone")
        instance = body["hookInstance"]
        sql = "SELECT count(*) FROM invocation WHERE hook_instance = :i"
        wait_until(
            lambda: count(url, sql, i=instance) == 1, "the spooled call reached the database"
        )
    finally:
        server.stop()
