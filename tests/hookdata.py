"""Hook requests the HTTP tests send, in-process and over real HTTP."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from testkit.casekit import load_cases

SAMPLES = Path(__file__).resolve().parent / "samples"
PATIENT_VIEW = "/cds-services/backpain-redflags-patient-view"
ENCOUNTER_START = "/cds-services/backpain-redflags-encounter-start"
INTAKE = "/cds-services/backpain-redflags-intake"
CASES = load_cases()


def sample(name: str) -> dict[str, Any]:
    """A file of tests/samples/ as JSON."""
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def sample_request() -> dict[str, Any]:
    """The README's sample patient-view request, with a fresh hookInstance."""
    data = sample("patient-view-request.json")
    data["hookInstance"] = str(uuid.uuid4())
    return data


def sample_qr() -> dict[str, Any]:
    """The sample request's intake: new bladder trouble after a deadlift."""
    bundle = sample_request()["prefetch"]["intake"]
    qr: dict[str, Any] = bundle["entry"][0]["resource"]
    return qr


def quiet_qr() -> dict[str, Any]:
    """A QR whose screen is complete and clean (self-care cards only)."""
    case = next(
        c for c in CASES if c.expected_indicators and set(c.expected_indicators) == {"info"}
    )
    return copy.deepcopy(case.qr)


def envelope(hook: str = "patient-view", **extra: Any) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": "athlete-1"},
        **extra,
    }


def with_subject(qr: dict[str, Any], patient: str, authored: str) -> dict[str, Any]:
    qr = copy.deepcopy(qr)
    qr["subject"] = {"reference": f"Patient/{patient}"}
    qr["authored"] = authored
    qr["status"] = "completed"
    return qr


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": resource} for resource in resources],
    }


def fhir_authorization(access_token: str) -> dict[str, Any]:
    """CDS Hooks ``fhirAuthorization`` with a bearer ``access_token`` for fhirServer reads."""
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/QuestionnaireResponse.read",
        "subject": "backpain-cds",
    }
