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
    answer = conforms(client.post(FEEDBACK, json={"feedback": [item]}))
    assert answer.status_code == 200
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


def test_feedback_answers_json_saying_what_was_stored(client: FlaskClient) -> None:
    card = issued_cards(client)[0]["uuid"]
    items = [overridden(card), overridden(card, when="2026-11-24T11:00:00Z")]
    answer = conforms(client.post(FEEDBACK, json={"feedback": items}))
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.json == {"received": 2, "stored": 2}
    again = conforms(client.post(FEEDBACK, json={"feedback": items[:1]}))
    assert again.json == {"received": 1, "stored": 0}, "an identical repeat is stored once"


def test_several_outcomes_on_one_card_are_kept_as_history(
    client: FlaskClient, audit: FakeAuditTrail
) -> None:
    card = issued_cards(client)[0]["uuid"]
    accepted = {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-24T10:00:00Z"}
    later = overridden(card, when="2026-11-24T10:05:00Z")
    for item in (accepted, later):
        assert conforms(client.post(FEEDBACK, json={"feedback": [item]})).json == {
            "received": 1,
            "stored": 1,
        }
    assert [(f.outcome, f.outcome_timestamp.minute) for f in audit.feedback] == [
        ("accepted", 0),
        ("overridden", 5),
    ]
