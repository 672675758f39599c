"""The loopback FHIR server answers QuestionnaireResponse searches the way a strict
server does: ``patient`` or a typed ``subject`` reference; a bare-id ``subject`` is a 400."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from testkit.fhir_server import FakeFhirStore, fhir_server


def qr(ident: str, patient: str, authored: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": ident,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": authored,
    }


STORE = [
    qr("old", "athlete-1", "2026-11-01T10:00:00Z"),
    qr("new", "athlete-1", "2026-11-20T10:00:00Z"),
    qr("other", "athlete-2", "2026-11-21T10:00:00Z"),
]


@pytest.mark.parametrize(
    "params", [{"patient": "athlete-1"}, {"subject": "Patient/athlete-1"}], ids=["patient", "typed"]
)
def test_a_patient_search_finds_that_patients_responses_newest_first(
    params: dict[str, str],
) -> None:
    with fhir_server(FakeFhirStore(questionnaire_responses=list(STORE))) as base:
        response = requests.get(
            f"{base}/QuestionnaireResponse", params={**params, "_sort": "-authored"}, timeout=5
        )
    assert response.status_code == 200
    ids = [entry["resource"]["id"] for entry in response.json()["entry"]]
    assert ids == ["new", "old"]


def test_a_bare_id_subject_is_refused_with_an_operation_outcome() -> None:
    store = FakeFhirStore(questionnaire_responses=list(STORE))
    with fhir_server(store) as base:
        response = requests.get(
            f"{base}/QuestionnaireResponse", params={"subject": "athlete-1"}, timeout=5
        )
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "subject" in outcome["issue"][0]["diagnostics"]
    assert store.seen[0]["params"] == {"subject": "athlete-1"}
