"""The bad-input corpus (hostile_cases.yaml) in-process, with the app's real limits.

Every case: a 4xx OperationOutcome, or a 200 carrying the screen-incomplete
card; never a 5xx, never a trace in the body, one audit record per call, and no
unhandled error logged. (tests/e2e/test_hostile_samples.py sends a few of them
through gunicorn into PostgreSQL.)
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.config import Settings
from testkit.fake_audit import FakeAuditTrail
from tests.http.hostile import load_cases, overlay, valid_qr

CASES = load_cases()
DEFAULT_PATH = "/cds-services/backpain-redflags-intake"
#: the app runs with the default limits (MAX_BODY_BYTES and the rest)
MAX_BODY_BYTES = Settings().max_body_bytes
TRACE_MARKERS = ("Traceback", 'File "', "site-packages", "/service/")


def valid_envelope() -> dict[str, Any]:
    return {
        "hook": "questionnaire-inprogress",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "questionnaireResponse": valid_qr()},
    }


def generated(kind: str) -> bytes:
    if kind == "huge":
        return json.dumps({**valid_envelope(), "padding": "x" * (MAX_BODY_BYTES + 1)}).encode()
    if kind == "deep-array":
        return b"[" * 100_000 + b"]" * 100_000
    if kind == "deep-object":
        nested: dict[str, Any] = {"leaf": True}
        for _ in range(200):
            nested = {"a": nested}
        return json.dumps({**valid_envelope(), "context": nested}).encode()
    if kind == "invalid-utf8":
        return b'{"hook": "\xff\xfe\xfd", "hookInstance": "x", "context": {}}'
    if kind == "long-integer":
        return b'{"hook": "questionnaire-inprogress", "n": 1' + b"7" * 6000 + b"}"
    if kind == "many-items":
        qr = valid_qr()
        qr["item"] = [{"linkId": f"x{i}", "answer": [{"valueString": "x"}]} for i in range(5000)]
        envelope = valid_envelope()
        envelope["context"]["questionnaireResponse"] = qr
        return json.dumps(envelope).encode()
    raise ValueError(f"hostile_cases.yaml: unknown generator {kind!r}")


def request_body(spec: dict[str, Any]) -> bytes:
    if "raw" in spec:
        return str(spec["raw"]).encode("utf-8")
    if "json" in spec:
        return json.dumps(spec["json"]).encode()
    if "generate" in spec:
        return generated(spec["generate"])
    envelope = overlay(valid_envelope(), spec.get("envelope") or {})
    if "qr" in spec:
        envelope["context"]["questionnaireResponse"] = overlay(valid_qr(), spec["qr"])
    return json.dumps(envelope).encode()


def topics(cards: Any) -> list[str]:
    return [
        card.get("source", {}).get("topic", {}).get("code")
        for card in cards
        if isinstance(card, dict)
    ]


def is_unhandled(record: logging.LogRecord) -> bool:
    return record.exc_info is not None or "unhandled error" in record.getMessage()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_hostile_input_is_answered_cleanly_and_audited(
    client: FlaskClient,
    audit: FakeAuditTrail,
    caplog: pytest.LogCaptureFixture,
    case: dict[str, Any],
) -> None:
    content_type = case.get("content_type", "application/json")
    headers = {"Content-Type": content_type} if content_type else {}
    before = len(audit.invocations)

    response = client.post(
        case.get("path", DEFAULT_PATH), data=request_body(case["body"]), headers=headers
    )

    status = response.status_code
    assert status < 500, response.text[:2000]
    for marker in TRACE_MARKERS:
        assert marker not in response.text
    expect = case["expect"]
    if status == 200 and expect == "no-cards":
        assert response.json == {"cards": []}
    elif status == 200:
        assert expect == "4xx-or-incomplete", f"200 where {expect} was expected"
        assert "screen-incomplete" in topics(response.json["cards"]), response.text[:2000]
    else:
        assert expect != "no-cards", f"{status} where 200 with no cards was expected"
        assert 400 <= status < 500
        if isinstance(expect, list):
            assert status in expect, response.text[:2000]
        assert response.headers["Content-Type"].startswith("application/fhir+json")
        outcome = response.json
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"] and outcome["issue"][0]["diagnostics"]

    assert len(audit.invocations) == before + 1, "exactly one audit record per call"
    assert audit.last.http_status == status
    assert not [r for r in caplog.records if is_unhandled(r)], "an unhandled error was logged"
