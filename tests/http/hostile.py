"""The bad-input corpus (``hostile_cases.yaml``) as data: its cases, the valid QR they
overlay, and the overlay. Shared by the in-process corpus run and the differential test
of FHIR validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

CASES_FILE = Path(__file__).with_name("hostile_cases.yaml")
INTAKE_CANONICAL = "https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake"
LOINC = "http://loinc.org"


def load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    return cases


def valid_qr() -> dict[str, Any]:
    """The valid QR each case's ``body.qr`` overlays."""
    no = {"valueCoding": {"system": LOINC, "code": "LA32-8", "display": "No"}}
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "hostile-1",
        "status": "completed",
        "questionnaire": INTAKE_CANONICAL,
        "subject": {"reference": "Patient/athlete-1"},
        "authored": "2026-11-20T10:00:00Z",
        "item": [{"linkId": "2", "item": [{"linkId": "2.1", "answer": [no]}]}],
    }


def overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied at the top level; a None value removes the key."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
