"""The CDS Hooks contract through a real server process (gunicorn) into PostgreSQL.

The HTTP behaviour itself (every status, discovery, CORS, the corpus, the fuzzing) is
tested in-process in tests/http/; here is what needs the real process: the socket,
the audit rows in PostgreSQL, readiness from the real database, the process's log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text

from testkit.fhir_server import FakeFhirStore, fhir_server
from testkit.server import ServerProcess
from tests.contract import conforms
from tests.e2e.audit_db import audit_engine, wait_for_invocations
from tests.hookdata import (
    PATIENT_VIEW,
    envelope,
    fhir_authorization,
    sample_qr,
    sample_request,
    with_subject,
)


@pytest.fixture(scope="module")
def audit(database_url: str) -> Iterator[Engine]:
    with audit_engine(database_url) as engine:
        yield engine


def post(server: ServerProcess, path: str, body: Any, **kwargs: Any) -> requests.Response:
    return conforms(requests.post(server.url(path), json=body, timeout=10, **kwargs))


def test_a_call_and_its_feedback_are_audited_in_postgres(
    server: ServerProcess, audit: Engine
) -> None:
    body = sample_request()
    response = post(server, PATIENT_VIEW, body)
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert cards[0]["indicator"] == "critical"
    [row] = wait_for_invocations(audit, "hook_instance = :hi", 1, hi=body["hookInstance"])
    assert row["http_status"] == 200 and row["patient_ref"] == "Patient/athlete-1"
    with audit.connect() as conn:
        issued = conn.execute(
            text("SELECT card_uuid FROM issued_card WHERE invocation_id = :id ORDER BY position"),
            {"id": row["id"]},
        ).scalars()
        assert list(issued) == [card["uuid"] for card in cards]

    item = {
        "card": cards[0]["uuid"],
        "outcome": "overridden",
        "overrideReason": {"userComment": "already referred"},
        "outcomeTimestamp": "2026-11-24T10:00:00Z",
    }
    assert post(server, f"{PATIENT_VIEW}/feedback", {"feedback": [item]}).status_code == 200
    with audit.connect() as conn:
        outcomes = conn.execute(
            text("SELECT outcome FROM card_feedback WHERE card_uuid = :card"),
            {"card": cards[0]["uuid"]},
        ).scalars()
        assert list(outcomes) == ["overridden"]


def test_fhir_server_path_uses_bearer_token(server: ServerProcess) -> None:
    store = FakeFhirStore(
        questionnaire_responses=[with_subject(sample_qr(), "athlete-1", "2026-11-20T10:00:00Z")]
    )
    token = "secret-access-token-" + uuid.uuid4().hex
    with fhir_server(store) as base:
        body = envelope(
            fhirServer=base,
            fhirAuthorization=fhir_authorization(token),
        )
        response = post(server, PATIENT_VIEW, body)
    assert response.status_code == 200
    assert response.json()["cards"][0]["indicator"] == "critical"
    assert store.seen[0]["authorization"] == f"Bearer {token}"
    assert token not in server.log()


def test_health_readiness_and_contract(server: ServerProcess) -> None:
    assert conforms(requests.get(server.url("/healthz"), timeout=10)).status_code == 200
    ready = conforms(requests.get(server.url("/readyz"), timeout=10))
    assert ready.status_code == 200
    assert ready.json()["database"] == "up"
    spec = requests.get(server.url("/openapi.yaml"), timeout=10)
    assert spec.status_code == 200 and spec.text.startswith("openapi: 3.1")
