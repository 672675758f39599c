"""Bodies a real HTTP server sees and the in-process client cannot fake: chunked uploads
past the limit, and lone surrogates, answered with a 4xx (never a 500) and audited."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import requests

from testkit.casekit import build_qr
from testkit.server import ServerProcess
from tests.e2e.audit_db import audit_engine, wait_for_invocations

INTAKE = "/cds-services/backpain-redflags-intake"


def _chunks(total: int, size: int = 65536) -> Iterator[bytes]:
    yield b'{"hook": "questionnaire-inprogress", "pad": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_chunked_body_over_the_limit_is_413(server: ServerProcess, database_url: str) -> None:
    since = datetime.now(UTC)
    response = requests.post(
        server.url(INTAKE),
        data=_chunks(10_000_000),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"
    invocation = response.headers["X-Request-ID"]  # ours: the caller sent none
    with audit_engine(database_url) as engine:
        rows = wait_for_invocations(
            engine,
            "id = CAST(:id AS uuid) AND occurred_at >= :since",
            1,
            id=invocation,
            since=since,
        )
    assert [row["http_status"] for row in rows] == [413]


def test_a_lone_surrogate_in_the_qr_is_400(server: ServerProcess, database_url: str) -> None:
    qr = build_qr({"id": "surrogate"})
    qr["item"][0]["text"] = "PLACEHOLDER"
    envelope = {
        "hook": "questionnaire-inprogress",
        "hookInstance": str(uuid.uuid4()),
        "context": {"questionnaireResponse": qr},
    }
    body = json.dumps(envelope).replace("PLACEHOLDER", "\\ud800")
    response = requests.post(
        server.url(INTAKE),
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "surrogate" in response.json()["issue"][0]["diagnostics"]
    with audit_engine(database_url) as engine:
        rows = wait_for_invocations(
            engine, "id = CAST(:id AS uuid)", 1, id=response.headers["X-Request-ID"]
        )
    assert [(row["http_status"], row["error_code"]) for row in rows] == [(400, "structure")]
