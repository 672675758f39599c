"""The CDS Hooks contract in-process (Flask test client, in-memory audit): discovery, the
services, where the QR comes from, 400/404/412/422, and every response against openapi.yaml."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from testkit.casekit import Case, build_qr, hook_request, indicators_of, topics_of
from testkit.fake_audit import FakeAuditTrail
from testkit.fhir_server import FakeFhirStore, fhir_server
from tests.conftest import TEST_HOST
from tests.contract import conforms
from tests.hookdata import (
    CASES,
    ENCOUNTER_START,
    INTAKE,
    PATIENT_VIEW,
    envelope,
    fhir_authorization,
    quiet_qr,
    sample_qr,
    sample_request,
    searchset,
    with_subject,
)

BASE_URL = f"http://{TEST_HOST}"


def post(client: FlaskClient, path: str, body: Any) -> TestResponse:
    return conforms(client.post(path, json=body))


def test_discovery_lists_the_three_services(client: FlaskClient) -> None:
    response = conforms(client.get("/cds-services"))
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json["services"]}
    assert set(services) == {
        "backpain-redflags-patient-view",
        "backpain-redflags-encounter-start",
        "backpain-redflags-intake",
    }
    assert services["backpain-redflags-intake"]["hook"] == "questionnaire-inprogress"
    assert "prefetch" not in services["backpain-redflags-intake"]
    for service_id in ("backpain-redflags-patient-view", "backpain-redflags-encounter-start"):
        query = services[service_id]["prefetch"]["intake"]
        # the search parameter `patient` says "this patient"; a bare-id `subject` may not
        assert query.startswith("QuestionnaireResponse?patient={{context.patientId}}&")
        assert "subject=" not in query
        assert "status=completed" in query and "_sort=-authored" in query


def test_sample_request_gives_cauda_equina_card_first(
    client: FlaskClient, audit: FakeAuditTrail
) -> None:
    response = post(client, PATIENT_VIEW, sample_request())
    assert response.status_code == 200
    cards = response.json["cards"]
    assert topics_of(cards)[0] == "cauda-equina"
    assert cards[0]["indicator"] == "critical"
    assert "immediate-steps" not in topics_of(cards)
    record = audit.last
    assert record.http_status == 200 and record.qr_source == "prefetch"
    assert [card.uuid for card in record.cards] == [card["uuid"] for card in cards]


def test_same_request_same_cards(client: FlaskClient) -> None:
    body = sample_request()
    first = post(client, PATIENT_VIEW, body).json
    second = post(client, PATIENT_VIEW, body).json
    assert first == second


def test_encounter_start_needs_encounter_id(client: FlaskClient) -> None:
    body = sample_request()
    body["hook"] = "encounter-start"
    response = post(client, ENCOUNTER_START, body)
    assert response.status_code == 400
    assert "encounterId" in response.json["issue"][0]["diagnostics"]
    body["context"]["encounterId"] = "enc-1"
    response = post(client, ENCOUNTER_START, body)
    assert response.status_code == 200
    assert response.json["cards"][0]["indicator"] == "critical"


def test_prefetch_bundle_newest_authored_wins(client: FlaskClient) -> None:
    alarming = with_subject(sample_qr(), "athlete-1", "2026-11-20T10:00:00Z")
    quiet = with_subject(quiet_qr(), "athlete-1", "2026-11-01T10:00:00Z")
    bundle = searchset(quiet, alarming)
    cards = post(client, PATIENT_VIEW, envelope(prefetch={"intake": bundle})).json["cards"]
    assert "critical" in indicators_of(cards)

    alarming["authored"], quiet["authored"] = quiet["authored"], alarming["authored"]
    cards = post(client, PATIENT_VIEW, envelope(prefetch={"intake": bundle})).json["cards"]
    assert set(indicators_of(cards)) == {"info"}


def test_fhir_server_path_uses_bearer_token(
    client: FlaskClient, audit: FakeAuditTrail, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = FakeFhirStore(
        questionnaire_responses=[with_subject(sample_qr(), "athlete-1", "2026-11-20T10:00:00Z")]
    )
    token = "secret-access-token-" + uuid.uuid4().hex
    with fhir_server(store) as base:
        body = envelope(
            fhirServer=base,
            fhirAuthorization=fhir_authorization(token),
        )
        response = post(client, PATIENT_VIEW, body)
    assert response.status_code == 200
    assert response.json["cards"][0]["indicator"] == "critical"
    search = store.seen[0]
    assert search["path"].endswith("/QuestionnaireResponse")
    assert search["params"]["patient"] == "athlete-1"
    assert "subject" not in search["params"]
    assert search["params"]["status"] == "completed"
    assert search["authorization"] == f"Bearer {token}"
    assert audit.last.qr_source == "fhirServer"
    assert token not in caplog.text
    assert token not in repr(audit.invocations)


def test_412_when_no_source_of_data(client: FlaskClient, audit: FakeAuditTrail) -> None:
    response = post(client, PATIENT_VIEW, envelope())
    assert response.status_code == 412
    assert response.json["resourceType"] == "OperationOutcome"
    assert audit.last.http_status == 412 and audit.last.error_code == "not-found"


@pytest.mark.parametrize(
    "prefetched",
    [
        None,  # CDS Hooks: the client's prefetch search found nothing
        searchset(),
        {**searchset(), "total": 0},
    ],
    ids=["null", "empty-searchset", "empty-searchset-with-total"],
)
def test_no_intake_on_file_is_200_with_no_cards(
    client: FlaskClient, audit: FakeAuditTrail, prefetched: dict[str, Any] | None
) -> None:
    """patient-view fires on every chart open: no intake is nothing to say, not an error."""
    response = post(client, PATIENT_VIEW, envelope(prefetch={"intake": prefetched}))
    assert response.status_code == 200
    assert response.json == {"cards": []}
    record = audit.last
    assert (record.http_status, record.cards, record.qr_source) == (200, (), "prefetch")
    assert record.error_code is None and record.patient_ref == "Patient/athlete-1"


def test_prefetch_bundle_with_entries_that_are_not_resources_is_400(client: FlaskClient) -> None:
    broken = {"resourceType": "Bundle", "type": "searchset", "entry": [1, "x"]}
    response = post(client, PATIENT_VIEW, envelope(prefetch={"intake": broken}))
    assert response.status_code == 400
    assert response.json["issue"][0]["expression"] == ["prefetch.intake"]


def test_412_when_fhir_server_fails(client: FlaskClient) -> None:
    store = FakeFhirStore(status=503)
    with fhir_server(store) as base:
        response = post(client, PATIENT_VIEW, envelope(fhirServer=base))
    assert response.status_code == 412
    # the remote status is not echoed (it would make the service a port scanner); it is logged
    diagnostics = response.json["issue"][0]["diagnostics"]
    assert "503" not in diagnostics and "fhirServer gave no usable answer" in diagnostics


def test_200_with_no_cards_when_fhir_server_has_no_intake(
    client: FlaskClient, audit: FakeAuditTrail
) -> None:
    store = FakeFhirStore(
        questionnaire_responses=[with_subject(sample_qr(), "someone-else", "2026-11-20T10:00:00Z")]
    )
    with fhir_server(store) as base:
        response = post(client, PATIENT_VIEW, envelope(fhirServer=base))
    assert response.status_code == 200
    assert response.json == {"cards": []}
    assert store.seen[0]["params"]["patient"] == "athlete-1"
    assert (audit.last.qr_source, audit.last.cards) == ("fhirServer", ())


def test_422_for_a_qr_that_is_not_valid_fhir(client: FlaskClient) -> None:
    qr = sample_qr()
    qr["authored"] = "yesterday"
    response = post(
        client, INTAKE, envelope("questionnaire-inprogress", context={"questionnaireResponse": qr})
    )
    assert response.status_code == 422
    assert response.json["issue"][0]["code"] == "invalid"


def test_422_for_another_patients_qr(client: FlaskClient) -> None:
    qr = with_subject(sample_qr(), "someone-else", "2026-11-20T10:00:00Z")
    response = post(client, PATIENT_VIEW, envelope(prefetch={"intake": qr}))
    assert response.status_code == 422
    assert response.json["issue"][0]["expression"] == ["QuestionnaireResponse.subject"]


def test_404_for_unknown_service(client: FlaskClient, audit: FakeAuditTrail) -> None:
    response = post(client, "/cds-services/no-such-service", envelope())
    assert response.status_code == 404
    assert response.json["resourceType"] == "OperationOutcome"
    assert audit.last.http_status == 404


def test_400_for_hook_mismatch(client: FlaskClient) -> None:
    response = post(client, PATIENT_VIEW, envelope("order-sign", prefetch={"intake": sample_qr()}))
    assert response.status_code == 400


def test_questionnaire_is_served(client: FlaskClient) -> None:
    read = conforms(client.get("/Questionnaire/exercise-back-pain-intake"))
    assert read.status_code == 200
    form = read.json
    search = conforms(client.get("/Questionnaire", query_string={"url": form["url"]}))
    versions = [e["resource"]["version"] for e in search.json["entry"]]
    assert sorted(versions) == ["1.0.0", "2.0.0"]  # the released 1.0.0 stays bundled
    exact = f"{form['url']}|{form['version']}"
    search = conforms(client.get("/Questionnaire", query_string={"url": exact}))
    assert search.json["total"] == 1
    assert search.json["entry"][0]["resource"]["id"] == form["id"]
    missing = conforms(client.get("/Questionnaire/nope"))
    assert missing.status_code == 404


def test_health_readiness_and_contract(client: FlaskClient) -> None:
    assert conforms(client.get("/healthz")).status_code == 200
    ready = conforms(client.get("/readyz"))
    assert ready.status_code == 200
    assert ready.json["database"] == "up"
    with client.get("/openapi.yaml") as spec:  # a file response: close it
        assert conforms(spec).status_code == 200 and spec.text.startswith("openapi: 3.1")


@pytest.fixture(scope="module")
def rule_pages_seen() -> set[str]:
    """Rule pages already fetched in this module (each is fetched once)."""
    return set()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_clinical_case_over_http(
    client: FlaskClient, case: Case, rule_pages_seen: set[str]
) -> None:
    body = hook_request(case, str(uuid.uuid4()))
    service = INTAKE if body["hook"] == "questionnaire-inprogress" else PATIENT_VIEW
    response = post(client, service, body)
    assert response.status_code == 200, response.text
    cards = response.json["cards"]
    assert topics_of(cards) == case.expected_topics, case.description
    assert indicators_of(cards) == case.expected_indicators
    for card in cards:
        url = card["source"]["url"]
        assert url.startswith(f"{BASE_URL}/rules/")
        if url not in rule_pages_seen:
            page = conforms(client.get(url))
            assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
            rule_pages_seen.add(url)


def provenance(card: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = card["extension"]["dev.backpain-cds.provenance"]
    return found


def test_ehr_hooks_speak_to_the_clinician_the_intake_hook_to_the_patient(
    client: FlaskClient,
) -> None:
    clinician = post(client, PATIENT_VIEW, sample_request()).json["cards"][0]
    body = envelope("questionnaire-inprogress", context={"questionnaireResponse": sample_qr()})
    patient = post(client, INTAKE, body).json["cards"][0]
    assert provenance(clinician)["voice"] == "clinician"
    assert provenance(patient)["voice"] == "patient"
    assert clinician["source"]["topic"] == patient["source"]["topic"]
    assert "send the patient" in clinician["detail"]
    assert "Go to the nearest emergency department now" in patient["detail"]
    assert clinician["suggestions"] and "suggestions" not in patient
    for card in (clinician, patient):
        assert "cauda-equina-red-flag" not in card["detail"] and "|" not in card["detail"]
        assert provenance(card)["rules"][0]["id"] == "cauda-equina-red-flag"
        assert card["source"]["url"] == f"{BASE_URL}/rules/cauda-equina-red-flag"


def test_an_in_progress_intake_gets_red_flags_so_far_and_one_quiet_line(
    client: FlaskClient,
) -> None:
    half = {"id": "half", "defaults": False, "answers": {"exercise-type": "impact"}}
    qr = build_qr(half)
    qr["status"] = "in-progress"
    body = envelope("questionnaire-inprogress", context={"questionnaireResponse": qr})
    cards = post(client, INTAKE, body).json["cards"]
    assert indicators_of(cards) == ("info",)
    qr = build_qr({**half, "answers": {"bladder-dysfunction-new": "yes"}})
    qr["status"] = "in-progress"
    body = envelope("questionnaire-inprogress", context={"questionnaireResponse": qr})
    cards = post(client, INTAKE, body).json["cards"]
    assert topics_of(cards) == ("cauda-equina", "screen-incomplete")
    assert indicators_of(cards) == ("critical", "info")
    qr["status"] = "completed"
    body = envelope("questionnaire-inprogress", context={"questionnaireResponse": qr})
    cards = post(client, INTAKE, body).json["cards"]
    assert indicators_of(cards) == ("critical", "warning")
    red_flag_questions = 26  # terminology/ValueSet-red-flag-screen.json
    assert len(provenance(cards[1])["missing"]) == red_flag_questions - 1


def test_rule_page_as_html_and_json_and_404(client: FlaskClient) -> None:
    html = conforms(client.get("/rules/sciatica-below-knee"))
    assert html.status_code == 200
    assert html.headers["Content-Type"].startswith("text/html")
    assert "Nerve root involvement (sciatica)" in html.text
    assert "For the patient" in html.text and "cks.nice.org.uk" in html.text
    data = conforms(
        client.get("/rules/sciatica-below-knee", headers={"Accept": "application/json"})
    )
    assert data.headers["Content-Type"].startswith("application/json")
    rule = data.json
    assert (rule["id"], rule["urgency"], rule["indicator"]) == (
        "sciatica-below-knee",
        "soon",
        "warning",
    )
    assert rule["url"] == f"{BASE_URL}/rules/sciatica-below-knee"
    assert rule["ruleSet"]["name"] == "backpain-redflags"
    assert rule["card"]["patient"]["summary"] and rule["sources"]
    assert {"concept": "pain-radiation-extent"}.items() <= rule["reads"][0].items()
    missing = conforms(client.get("/rules/no-such-rule"))
    assert missing.status_code == 404
    assert missing.json["resourceType"] == "OperationOutcome"


def test_questionnaire_read_from_fhir_server_when_not_bundled(client: FlaskClient) -> None:
    """Another clinic's form (other linkIds, same codes), published on the EHR's FHIR server."""
    qr = build_qr({"id": "foreign-1", "form": "foreign", "answers": {"saddle-anaesthesia": "yes"}})
    form = qr.pop("contained")[0]
    qr["questionnaire"] = f"{form['url']}|{form['version']}"
    body = envelope("questionnaire-inprogress", context={"questionnaireResponse": qr})
    # Without the form the linkIds mean nothing: the screen cannot run fully.
    unresolved = post(client, INTAKE, body).json["cards"]
    assert "screen-incomplete" in topics_of(unresolved)
    assert "cauda-equina" not in topics_of(unresolved)

    store = FakeFhirStore(questionnaires=[form])
    with fhir_server(store) as base:
        resolved = post(client, INTAKE, {**body, "fhirServer": base}).json["cards"]
    assert topics_of(resolved) == ("cauda-equina",)
    assert store.seen[0]["path"].endswith("/Questionnaire")
    assert store.seen[0]["params"] == {"url": form["url"], "version": form["version"]}
