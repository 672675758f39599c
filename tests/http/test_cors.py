"""CORS in-process (browser callers: intake portals, the CDS Hooks sandbox). With a real
JWT check in front, tests/e2e/test_auth.py covers the same over real HTTP."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers

from service.app import create_app
from service.config import Settings
from service.knowledge import Knowledge
from testkit.fake_audit import FakeAuditTrail
from tests.conftest import TEST_HOST
from tests.contract import conforms
from tests.hookdata import INTAKE, PATIENT_VIEW, sample_request

SANDBOX = "https://sandbox.cds-hooks.org"
PORTAL = "https://portal.example.org"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
def settings() -> Settings:
    return Settings(
        auth_enabled=False, public_url=f"http://{TEST_HOST}", cors_origins=(SANDBOX, PORTAL)
    )


def cors_headers(headers: Headers) -> list[str]:
    return [name for name, _ in headers if name.lower().startswith("access-control")]


def test_an_allowed_origin_gets_a_preflight_answer(client: FlaskClient) -> None:
    response = client.options(INTAKE, headers={"Origin": SANDBOX, **PREFLIGHT})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["Vary"] and "Origin" in response.headers["Vary"]


def test_an_allowed_origin_can_read_answers_and_errors(client: FlaskClient) -> None:
    answer = conforms(client.post(PATIENT_VIEW, json=sample_request(), headers={"Origin": PORTAL}))
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == PORTAL
    assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]
    refused = conforms(client.post(PATIENT_VIEW, json={}, headers={"Origin": PORTAL}))
    assert refused.status_code == 400
    assert refused.headers["Access-Control-Allow-Origin"] == PORTAL
    form = client.get("/Questionnaire/exercise-back-pain-intake", headers={"Origin": PORTAL})
    assert form.headers["Access-Control-Allow-Origin"] == PORTAL


def test_a_disallowed_origin_gets_no_cors_headers(client: FlaskClient) -> None:
    preflight = client.options(INTAKE, headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert not cors_headers(preflight.headers)
    plain = client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert plain.status_code == 200
    assert not cors_headers(plain.headers)


def test_without_cors_origins_no_origin_is_allowed(knowledge: Knowledge) -> None:
    closed = create_app(Settings(auth_enabled=False), audit=FakeAuditTrail(), knowledge=knowledge)
    response = closed.test_client().options(INTAKE, headers={"Origin": SANDBOX, **PREFLIGHT})
    assert not cors_headers(response.headers)
