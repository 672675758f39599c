"""Every file in tests/samples/ gives the answer tests/samples/README.md says it gives."""

from __future__ import annotations

from flask.testing import FlaskClient

from testkit.casekit import indicators_of, topics_of
from testkit.fake_audit import FakeAuditTrail
from tests.contract import conforms
from tests.hookdata import ENCOUNTER_START, INTAKE, PATIENT_VIEW, SAMPLES, sample


def test_every_sample_is_described_in_the_samples_readme() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for path in SAMPLES.glob("*.json"):
        assert f"`{path.name}`" in readme, path.name


def test_patient_view_request_gives_the_critical_cauda_equina_card(client: FlaskClient) -> None:
    cards = conforms(client.post(PATIENT_VIEW, json=sample("patient-view-request.json"))).json
    assert topics_of(cards["cards"]) == ("cauda-equina",)
    assert indicators_of(cards["cards"]) == ("critical",)


def test_no_red_flags_gives_self_care_cards_only(client: FlaskClient) -> None:
    body = sample("patient-view-no-red-flags.json")
    cards = conforms(client.post(PATIENT_VIEW, json=body)).json["cards"]
    assert cards and set(indicators_of(cards)) == {"info"}
    assert "screen-incomplete" not in topics_of(cards)


def test_no_intake_on_file_gives_no_cards(client: FlaskClient) -> None:
    body = sample("patient-view-no-intake.json")
    response = conforms(client.post(PATIENT_VIEW, json=body))
    assert (response.status_code, response.json) == (200, {"cards": []})


def test_encounter_start_gives_the_critical_card_first(client: FlaskClient) -> None:
    body = sample("encounter-start-request.json")
    cards = conforms(client.post(ENCOUNTER_START, json=body)).json["cards"]
    assert cards[0]["indicator"] == "critical"


def test_intake_request_speaks_to_the_patient(client: FlaskClient) -> None:
    cards = conforms(client.post(INTAKE, json=sample("intake-request.json"))).json["cards"]
    assert topics_of(cards)[0] == "cauda-equina" and cards[0]["indicator"] == "critical"
    assert cards[0]["extension"]["dev.backpain-cds.provenance"]["voice"] == "patient"


def test_the_feedback_samples_name_the_sample_requests_card(
    client: FlaskClient, audit: FakeAuditTrail
) -> None:
    conforms(client.post(PATIENT_VIEW, json=sample("patient-view-request.json")))
    feedback = f"{PATIENT_VIEW}/feedback"
    for name in ("feedback-accepted.json", "feedback.json"):
        answer = conforms(client.post(feedback, json=sample(name)))
        assert (answer.status_code, answer.json) == (200, {"received": 1, "stored": 1})
    latest = max(audit.feedback, key=lambda record: record.outcome_timestamp)
    assert [record.outcome for record in audit.feedback] == ["accepted", "overridden"]
    assert latest.outcome == "overridden"


def test_own_form_qr_is_read_by_its_codes(client: FlaskClient) -> None:
    body = {
        "hook": "questionnaire-inprogress",
        "hookInstance": "7d0c5a3e-1b2f-4c8d-9e6a-5f4b3c2d1e0f",
        "context": {"questionnaireResponse": sample("own-form-qr.json")},
    }
    cards = conforms(client.post(INTAKE, json=body)).json["cards"]
    assert topics_of(cards) == ("cauda-equina",) and cards[0]["indicator"] == "critical"
