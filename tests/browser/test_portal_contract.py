"""The portal's real HTTP answers (the server process the browser tests use) against
openapi.yaml: the page, a screen, its refusals."""

from __future__ import annotations

import json
import re

import requests

from testkit.casekit import build_qr
from testkit.server import ServerProcess
from tests.contract import conforms


def _session_and_token(server: ServerProcess) -> tuple[requests.Session, str]:
    session = requests.Session()
    page = conforms(session.get(server.url("/intake"), timeout=10))
    assert page.status_code == 200
    found = re.search(r'id="portal-config">(.*?)</script>', page.text)
    assert found is not None
    return session, str(json.loads(found.group(1))["csrfToken"])


def test_page_screen_and_refusals_follow_the_contract(portal_server: ServerProcess) -> None:
    session, token = _session_and_token(portal_server)
    headers = {
        "Content-Type": "application/fhir+json",
        "Origin": portal_server.base_url,
        "X-CSRF-Token": token,
    }
    draft = build_qr({"id": "contract", "answers": {"bladder-dysfunction-new": "yes"}})
    draft["status"] = "in-progress"
    screened = conforms(
        session.post(portal_server.url("/intake/screen"), json=draft, headers=headers, timeout=10)
    )
    assert screened.status_code == 200
    assert screened.json()["cards"][0]["indicator"] == "critical"

    forged = {**headers, "X-CSRF-Token": "not-the-token"}
    refused = conforms(
        session.post(portal_server.url("/intake/screen"), json=draft, headers=forged, timeout=10)
    )
    assert refused.status_code == 403

    severity = next(i for i in draft["item"][0]["item"] if i["linkId"] == "1.3")
    severity["answer"] = [{"valueInteger": 11}]
    out_of_range = conforms(
        session.post(portal_server.url("/intake/screen"), json=draft, headers=headers, timeout=10)
    )
    assert out_of_range.status_code == 422
    missing = conforms(session.get(portal_server.url("/intake/not-a-form"), timeout=10))
    assert missing.status_code == 404
