"""A request names the fhirServer to read from: only a server allowed for its client is
ever contacted (issue 11, finding 6). Real server processes, real keys, real FHIR servers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import requests

from testkit.casekit import build_qr
from testkit.fhir_server import FakeFhirStore, fhir_server
from testkit.server import ServerProcess
from testkit.signing import ClientKey, claims, jwks
from tests.e2e.conftest import ServerFactory
from tests.hookdata import fhir_authorization

PUBLIC_URL = "https://cds.example.org"
PATIENT_VIEW = "/cds-services/backpain-redflags-patient-view"
EHR = "https://ehr.example.org"
KEY = ClientKey.es384("policy-1")


def _store() -> FakeFhirStore:
    qr = build_qr({"id": "remote", "answers": {"saddle-anaesthesia": "yes"}})
    qr["subject"] = {"reference": "Patient/athlete-1"}
    return FakeFhirStore(questionnaire_responses=[qr])


def _call(server: ServerProcess, base: str, token: str | None = None) -> requests.Response:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "athlete-1"},
        "fhirServer": base,
        "fhirAuthorization": fhir_authorization("remote-token"),
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(server.url(PATIENT_VIEW), json=body, headers=headers, timeout=20)


def test_with_auth_on_only_the_issuers_servers_are_contacted(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    allowed, other = _store(), _store()
    with fhir_server(allowed) as allowed_base, fhir_server(other) as other_base:
        issuers = {"issuers": [{"iss": EHR, "jwks": jwks(KEY), "fhirServers": [allowed_base]}]}
        path = tmp_path / "issuers.json"
        path.write_text(json.dumps(issuers))
        server = server_factory(
            {"CDS_AUTH": "on", "CDS_PUBLIC_URL": PUBLIC_URL, "CDS_TRUSTED_ISSUERS": str(path)}
        )

        def token() -> str:
            return KEY.sign(claims(EHR, PUBLIC_URL + PATIENT_VIEW))

        refused = _call(server, other_base, token())
        assert refused.status_code == 412
        diagnostics = refused.json()["issue"][0]["diagnostics"]
        assert diagnostics == "fhirServer is not allowed for this client"
        assert other.seen == []  # never contacted

        accepted = _call(server, allowed_base, token())
        assert accepted.status_code == 200
        assert accepted.json()["cards"][0]["indicator"] == "critical"
        assert allowed.seen and allowed.seen[0]["authorization"] == "Bearer remote-token"


def test_with_auth_off_only_the_allowed_list_is_contacted(server_factory: ServerFactory) -> None:
    outside = _store()  # on 127.0.0.2: loopback too, but not in the default list
    with fhir_server(outside, host="127.0.0.2") as base, fhir_server(_store()) as loopback:
        server = server_factory()  # FHIR_SERVERS_ALLOWED unset: loopback 127.0.0.1, any port
        refused = _call(server, base)
        assert refused.status_code == 412
        assert outside.seen == []
        assert _call(server, loopback).status_code == 200
