"""The portal's endpoints in process, with CDS_AUTH on: the page, the same-origin screen and
its protections (token, origin, rate limit, body limits), the audit record of each call,
and the hand-over to a loopback FHIR server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.app import create_app
from service.audit.records import FeedbackRecord, InvocationRecord
from service.config import Settings
from service.knowledge import Knowledge
from testkit.casekit import build_qr
from testkit.fhir_server import FakeFhirStore, fhir_server
from testkit.signing import ClientKey, jwks

PUBLIC = "http://portal.test"
ORIGIN = {"Origin": PUBLIC}


class Trail:
    """The audit port: keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[InvocationRecord] = []
        self.refusals: list[tuple[str, int]] = []

    def record_invocation(self, record: InvocationRecord) -> None:
        self.records.append(record)

    def record_refusal(self, client_key: str, status: int, at: datetime) -> None:
        self.refusals.append((client_key, status))

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]:
        return set()

    def record_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        return 0

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        return True

    def health(self) -> dict[str, Any]:
        return {"database": "up", "spool_depth": 0}

    def close(self) -> None:
        return None


class NoFhir:
    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]:
        raise RuntimeError("no FHIR server here")

    def questionnaire(self, base: str, canonical: str, token: str | None) -> None:
        return None


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    issuers = tmp_path_factory.mktemp("issuers") / "issuers.json"
    key = ClientKey.es384("ehr")
    issuers.write_text(json.dumps({"issuers": [{"iss": "https://ehr.test", "jwks": jwks(key)}]}))
    return Settings(
        auth_enabled=True,
        public_url=PUBLIC,
        trusted_issuers_file=issuers,
        max_body_bytes=200_000,
        portal_rate_burst=1000,
        emergency_number="999",
    )


def make(settings: Settings, knowledge: Knowledge) -> tuple[Flask, Trail]:
    trail = Trail()
    app = create_app(
        settings,
        audit=trail,
        replay=trail,
        knowledge=knowledge,
        fhir=NoFhir(),  # type: ignore[arg-type]
    )
    return app, trail


@pytest.fixture
def portal(base_settings: Settings, knowledge: Knowledge) -> tuple[Flask, Trail]:
    return make(base_settings, knowledge)


def page_token(client: FlaskClient, path: str = "/intake") -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'<script type="application/json" id="portal-config">(.*?)</script>', html)
    assert found is not None
    token: str = json.loads(found.group(1))["csrfToken"]
    return token


def screen(client: FlaskClient, qr: Any, token: str, **headers: str) -> Any:
    return client.post(
        "/intake/screen",
        data=json.dumps(qr),
        headers={
            "Content-Type": "application/fhir+json",
            "X-CSRF-Token": token,
            **ORIGIN,
            **headers,
        },
    )


def draft(**answers: Any) -> dict[str, Any]:
    qr = build_qr({"id": "draft", "defaults": False, "answers": answers})
    qr["status"] = "in-progress"
    del qr["subject"]
    return qr


def test_the_page_renders_the_form_with_scripts_last_and_a_token_cookie(
    portal: tuple[Flask, Trail],
) -> None:
    client = portal[0].test_client()
    response = client.get("/intake")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "Go to the nearest emergency department now, or call 999." in html
    body = html[html.index("<body>") :]
    scripts = [m.start() for m in re.finditer(r"<script", body)]
    assert "<script" not in html[: html.index("<body>")]
    assert scripts[0] > body.index("</main>") and body.index("</body>") > scripts[-1]
    assert "/intake/static/vendor/lforms/webcomponent/lhc-forms.js" in body
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/intake" in cookie
    token = page_token(client)
    assert re.search(r"intake_csrf=([^;]+)", client.get("/intake").headers["Set-Cookie"])
    assert len(token) >= 40


def test_a_page_per_bundled_questionnaire_and_404_otherwise(portal: tuple[Flask, Trail]) -> None:
    client = portal[0].test_client()
    assert client.get("/intake/exercise-back-pain-intake").status_code == 200
    missing = client.get("/intake/no-such-form")
    assert missing.status_code == 404
    assert missing.get_json()["resourceType"] == "OperationOutcome"


def test_vendored_files_are_served(portal: tuple[Flask, Trail]) -> None:
    client = portal[0].test_client()
    for path in (
        "vendor/lforms/webcomponent/lhc-forms.js",
        "vendor/lforms/webcomponent/styles.css",
        "vendor/lforms/fhir/R4/lformsFHIR.min.js",
        "portal.js",
    ):
        response = client.get(f"/intake/static/{path}")
        assert response.status_code == 200, path
        response.close()


def test_the_portal_screens_without_a_jwt_while_the_hooks_still_need_one(
    portal: tuple[Flask, Trail],
) -> None:
    app, trail = portal
    client = app.test_client()
    token = page_token(client)
    answered = screen(client, draft(**{"bladder-dysfunction-new": "yes"}), token)
    assert answered.status_code == 200, answered.get_json()
    assert answered.get_json()["cards"][0]["indicator"] == "critical"
    hook = client.post(
        "/cds-services/backpain-redflags-intake",
        json={"hook": "questionnaire-inprogress", "hookInstance": "x", "context": {}},
    )
    assert hook.status_code == 401
    record = trail.records[0]
    assert (record.service_id, record.hook, record.http_status) == (
        "intake-portal",
        "questionnaire-inprogress",
        200,
    )
    assert record.qr_source == "portal"
    assert record.fired_rules[0].rule_id.startswith("cauda-equina")


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code


def test_csrf_and_origin_are_required_and_refusals_audited(portal: tuple[Flask, Trail]) -> None:
    app, trail = portal
    client = app.test_client()
    token = page_token(client)
    qr = draft()
    _refused(screen(client, qr, ""), 403, "forbidden")
    _refused(screen(client, qr, token + "x"), 403, "forbidden")
    _refused(screen(client, qr, token, Origin="https://evil.example"), 403, "forbidden")
    other = app.test_client()  # never loaded the page: no cookie
    _refused(screen(other, qr, token), 403, "forbidden")
    # refusals before anyone is trusted are counted per client and window, not a row each
    assert trail.records == []
    assert trail.refusals == [("127.0.0.1", 403)] * 4


def test_a_request_without_origin_must_not_be_cross_site(portal: tuple[Flask, Trail]) -> None:
    client = portal[0].test_client()
    token = page_token(client)
    headers = {"Content-Type": "application/json", "X-CSRF-Token": token}
    body = json.dumps(draft())
    cross = client.post(
        "/intake/screen", data=body, headers={**headers, "Sec-Fetch-Site": "cross-site"}
    )
    _refused(cross, 403, "forbidden")
    same = client.post(
        "/intake/screen", data=body, headers={**headers, "Sec-Fetch-Site": "same-origin"}
    )
    assert same.status_code == 200


def test_rate_limited_per_client_with_retry_after(
    base_settings: Settings, knowledge: Knowledge
) -> None:
    app, trail = make(
        replace(base_settings, portal_rate_burst=3, portal_rate_per_minute=6), knowledge
    )
    client = app.test_client()
    token = page_token(client)
    statuses = [screen(client, draft(), token).status_code for _ in range(3)]
    limited = screen(client, draft(), token)
    assert statuses == [200, 200, 200]
    _refused(limited, 429, "throttled")
    assert limited.headers["Retry-After"] == "10"
    elsewhere = screen(client, draft(), token, **{"X-Forwarded-For": "1.2.3.4"})
    assert elsewhere.status_code == 429  # no trusted proxy header configured: same peer
    assert [r.http_status for r in trail.records] == [200, 200, 200]
    assert trail.refusals == [("127.0.0.1", 429), ("127.0.0.1", 429)]


def test_body_limits_and_shape(base_settings: Settings, knowledge: Knowledge) -> None:
    app, _ = make(replace(base_settings, max_body_bytes=2_000), knowledge)
    client = app.test_client()
    token = page_token(client)
    big = draft(**{"exercise-type": "impact"})
    big["text"] = {"status": "generated", "div": "x" * 5_000}
    _refused(screen(client, big, token), 413, "too-costly")
    as_form = client.post(
        "/intake/screen",
        data="a=b",
        headers={
            "X-CSRF-Token": token,
            **ORIGIN,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    _refused(as_form, 415, "not-supported")
    _refused(screen(client, {"resourceType": "Patient"}, token), 422, "invalid")
    foreign = draft()
    foreign["questionnaire"] = "https://elsewhere.example/Questionnaire/x"
    _refused(screen(client, foreign, token), 422, "invalid")


def test_out_of_range_and_missing_answers_are_refused_naming_the_item(
    portal: tuple[Flask, Trail],
) -> None:
    client = portal[0].test_client()
    token = page_token(client)
    too_much = screen(client, draft(**{"pain-severity": 11}), token)
    _refused(too_much, 422, "invalid")
    assert "item 1.3" in too_much.get_json()["issue"][0]["diagnostics"]
    half = draft(**{"exercise-type": "impact", "fever": "no"})
    assert screen(client, half, token).status_code == 200
    half["status"] = "completed"
    half["subject"] = {"display": "A patient"}
    refused = screen(client, half, token)
    _refused(refused, 422, "invalid")
    assert "item 2.1 (Since the pain began" in refused.get_json()["issue"][0]["diagnostics"]


def test_submit_without_a_clinic_server_says_so(portal: tuple[Flask, Trail]) -> None:
    client = portal[0].test_client()
    token = page_token(client)
    response = client.post(
        "/intake/submit",
        data=json.dumps(build_qr({"id": "full"})),
        headers={"Content-Type": "application/fhir+json", "X-CSRF-Token": token, **ORIGIN},
    )
    _refused(response, 409, "not-supported")


@pytest.fixture
def clinic() -> Iterator[tuple[FakeFhirStore, str]]:
    store = FakeFhirStore()
    with fhir_server(store) as base:
        yield store, base


def submit(client: FlaskClient, qr: dict[str, Any], token: str) -> Any:
    return client.post(
        "/intake/submit",
        data=json.dumps(qr),
        headers={"Content-Type": "application/fhir+json", "X-CSRF-Token": token, **ORIGIN},
    )


def test_submit_stores_on_the_clinic_server_and_audits(
    base_settings: Settings, knowledge: Knowledge, clinic: tuple[FakeFhirStore, str]
) -> None:
    store, base = clinic
    settings = replace(base_settings, portal_fhir_server=base, portal_fhir_token="secret-1")
    app, trail = make(settings, knowledge)
    client = app.test_client()
    token = page_token(client)
    draft_qr = build_qr({"id": "draft"})
    draft_qr["status"] = "in-progress"
    _refused(submit(client, draft_qr, token), 422, "invalid")
    stored = submit(client, build_qr({"id": "full"}), token)
    assert stored.status_code == 201
    assert stored.get_json() == {"stored": "QuestionnaireResponse/qr-1"}
    assert store.created[0]["status"] == "completed"
    assert store.seen[-1]["authorization"] == "Bearer secret-1"
    record = trail.records[-1]
    assert (record.service_id, record.hook, record.http_status) == (
        "intake-portal",
        "portal-submit",
        201,
    )
    assert record.patient_ref == "Patient/example"


def test_a_failed_delivery_is_told_and_audited_never_silent(
    base_settings: Settings, knowledge: Knowledge, clinic: tuple[FakeFhirStore, str]
) -> None:
    store, base = clinic
    store.failing_posts, store.post_status = 100, 503
    settings = replace(base_settings, portal_fhir_server=base, portal_delivery_attempts=2)
    app, trail = make(settings, knowledge)
    client = app.test_client()
    token = page_token(client)
    failed = submit(client, build_qr({"id": "full"}), token)
    _refused(failed, 502, "transient")
    assert "answered HTTP 503" in failed.get_json()["issue"][0]["diagnostics"]
    assert len([s for s in store.seen if s.get("method") == "POST"]) == 2
    record = trail.records[-1]
    assert (record.http_status, record.error_code) == (502, "transient")
    assert record.error_detail is not None and "HTTP 503" in record.error_detail
    assert record.fired_rules  # the screen ran and is kept with the failure


def test_portal_off_serves_no_page(base_settings: Settings, knowledge: Knowledge) -> None:
    app, _ = make(replace(base_settings, portal_enabled=False), knowledge)
    assert app.test_client().get("/intake").status_code == 404


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PORTAL_FHIR_SERVER": "https://fhir.clinic.example/r4/",
            "PORTAL_FHIR_TOKEN": "t0ken",
            "PORTAL_RATE_PER_MINUTE": "30",
            "PORTAL_RATE_BURST": "10",
            "PORTAL_CLIENT_IP_HEADER": "X-Real-IP",
        }
    )
    assert settings.portal_fhir_server == "https://fhir.clinic.example/r4"
    assert (settings.portal_rate_per_minute, settings.portal_rate_burst) == (30, 10)
    assert "t0ken" not in repr(settings)
    with pytest.raises(ValueError, match="PORTAL_FHIR_SERVER"):
        Settings.from_env({"PORTAL_FHIR_SERVER": "fhir.clinic.example"})


def test_a_clinic_link_names_the_patient_only_when_it_is_a_fhir_id(
    portal: tuple[Flask, Trail],
) -> None:
    client = portal[0].test_client()

    def patient_of(query: str) -> Any:
        html = client.get(f"/intake{query}").get_data(as_text=True)
        found = re.search(r'id="portal-config">(.*?)</script>', html)
        assert found is not None
        return json.loads(found.group(1))["patient"]

    assert patient_of("?patient=athlete-7.b") == "Patient/athlete-7.b"
    assert patient_of("?patient=a/b") is None
    assert patient_of("?patient=" + "x" * 65) is None
    assert patient_of("") is None
