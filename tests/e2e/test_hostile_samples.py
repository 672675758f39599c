"""A few of the hostile inputs through gunicorn into PostgreSQL: what the socket and the
real audit store add to the in-process corpus (tests/http/test_hostile_input.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from testkit.server import ServerProcess
from tests.e2e.audit_db import audit_engine, invocation_count, invocations
from tests.http.test_hostile_input import CASES, DEFAULT_PATH, TRACE_MARKERS, request_body

#: the body the socket must cut short, bytes that are not UTF-8, and a NUL-laden QR
SAMPLED = ("huge body", "invalid UTF-8", "NUL characters in references")


@pytest.fixture(scope="module")
def audit(database_url: str) -> Iterator[Engine]:
    with audit_engine(database_url) as engine:
        yield engine


@pytest.mark.parametrize("name", SAMPLED)
def test_hostile_sample_is_answered_cleanly_and_audited_in_postgres(
    server: ServerProcess, audit: Engine, name: str
) -> None:
    case: dict[str, Any] = next(c for c in CASES if c["name"] == name)
    before = invocation_count(audit)
    response = requests.post(
        server.url(case.get("path", DEFAULT_PATH)),
        data=request_body(case["body"]),
        headers={"Content-Type": "application/json"},
        timeout=20,
    )
    assert response.status_code < 500, response.text[:2000]
    for marker in TRACE_MARKERS:
        assert marker not in response.text
    expect = case["expect"]
    if isinstance(expect, list):
        assert response.status_code in expect
    [latest] = invocations(audit, "seq = (SELECT max(seq) FROM invocation)")
    assert invocation_count(audit) == before + 1, "exactly one audit row per call"
    assert latest["http_status"] == response.status_code


def test_the_server_logged_no_unhandled_error(server: ServerProcess) -> None:
    log = server.log()
    assert "Traceback" not in log
    assert "unhandled error" not in log
