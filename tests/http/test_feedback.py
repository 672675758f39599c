"""CDS Hooks feedback in-process: on issued cards only, stored through the audit port."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient

from testkit.fake_audit import FakeAuditTrail
from tests.contract import conforms
from tests.hookdata import PATIENT_VIEW, sample_request

FEEDBACK = f"{PATIENT_VIEW}/feedback"


def issued_cards(client: FlaskClient) -> list[dict[str, Any]]:
    response = conforms(client.post(PATIENT_VIEW, json=sample_request()))
    assert response.status_code == 200
    cards: list[dict[str, Any]] = response.json["cards"]
    return cards


def overridden(card_uuid: str, when: str = "2026-11-24T10:00:00Z") -> dict[str, Any]:
    return {
        "card": card_uuid,
        "outcome": "overridden",
        "overrideReason": {"userComment": "already referred"},
        "outcomeTimestamp": when,
    }


def test_feedback_on_issued_card_is_accepted_and_unknown_refused(
    client: FlaskClient, audit: FakeAuditTrail
) -> None:
    cards = issued_cards(client)
    item = overridden(cards[0]["uuid"])
    assert conforms(client.post(FEEDBACK, json={"feedback": [item]})).status_code == 200
    [stored] = audit.feedback
    assert stored.card_uuid == cards[0]["uuid"] and stored.outcome == "overridden"
    assert (stored.override_reason or {})["userComment"] == "already referred"
    assert audit.last.hook == "feedback" and audit.last.http_status == 200

    unknown = {**item, "card": str(uuid.uuid4())}
    response = conforms(client.post(FEEDBACK, json={"feedback": [unknown]}))
    assert response.status_code == 400
    assert response.json["issue"][0]["expression"] == ["feedback[0].card"]
    assert len(audit.feedback) == 1
    assert audit.last.http_status == 400


def test_feedback_for_an_unknown_service_is_404(client: FlaskClient) -> None:
    item = overridden(issued_cards(client)[0]["uuid"])
    response = conforms(client.post("/cds-services/nope/feedback", json={"feedback": [item]}))
    assert response.status_code == 404
