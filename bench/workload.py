"""The requests the bench sends: one realistic screen, three ways of delivering it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.pace import PLACEHOLDER
from testkit.casekit import build_qr

SERVICE_ID = "backpain-redflags-patient-view"
PATIENT_ID = "example"  # tests.casekit's QR subject is Patient/example
USER_ID = "Practitioner/physio-1"

#: ~30 answers, every red-flag question answered, two cauda-equina flags ticked.
REALISTIC_ANSWERS: dict[str, Any] = {
    "saddle-anaesthesia": "yes",
    "bladder-dysfunction-new": "yes",
    "pain-builds-with-duration": "no",
    "sharp-localised-pain-after-twisting": "no",
}


def realistic_qr() -> dict[str, Any]:
    qr = build_qr({"id": "bench-intake", "answers": REALISTIC_ANSWERS})
    qr["meta"] = {"versionId": "1"}
    return qr


def searchset(qr: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"https://ehr.example.org/fhir/QuestionnaireResponse/{qr['id']}",
                "resource": qr,
                "search": {"mode": "match"},
            }
        ],
    }


def envelope(**fields: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": PLACEHOLDER,
        "context": {"userId": USER_ID, "patientId": PATIENT_ID},
        **fields,
    }


@dataclass(frozen=True)
class Workload:
    """A named request body (hookInstance left as PLACEHOLDER) for one service path."""

    name: str
    title: str
    body: dict[str, Any]

    def write(self, directory: Path) -> Path:
        path = directory / f"body-{self.name}.json"
        path.write_text(json.dumps(self.body), encoding="utf-8")
        return path

    def concrete(self, hook_instance: str) -> dict[str, Any]:
        text = json.dumps(self.body).replace(PLACEHOLDER, hook_instance)
        body: dict[str, Any] = json.loads(text)
        return body


def workloads(fhir_base: str | None) -> list[Workload]:
    """Each call's QR differs (its id carries the call's hookInstance), as across patients:
    nothing keyed on the QR's content can be served from a cache."""
    qr = realistic_qr()
    qr["id"] = f"bench-{PLACEHOLDER}"
    found = [
        Workload("hook", "hook, QR in prefetch", envelope(prefetch={"intake": qr})),
        Workload(
            "hook_bundle",
            "hook, QR in a prefetch searchset Bundle",
            envelope(prefetch={"intake": searchset(qr)}),
        ),
    ]
    if fhir_base is not None:
        found.append(
            Workload(
                "hook_fhir_server",
                "hook, QR fetched from fhirServer (loopback)",
                envelope(
                    fhirServer=fhir_base,
                    fhirAuthorization={
                        "access_token": "bench-access-token",
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "scope": "patient/QuestionnaireResponse.read",
                        "subject": "backpain-cds",
                    },
                ),
            )
        )
    return found


def fhir_resources(path: Path) -> Path:
    """What the loopback FHIR server holds: the patient's completed intake."""
    qr = realistic_qr()
    qr["status"] = "completed"
    path.write_text(json.dumps({"questionnaireResponses": [qr]}), encoding="utf-8")
    return path
