"""CDS Hooks 2.0 client authentication against real server processes, with real signed JWTs.

Two servers share one audit database (replay protection must hold across
processes); the issuers' keys are generated here and one issuer's JWKS is served
by a real loopback HTTP server.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text

from testkit.casekit import build_qr, critical_card_call
from testkit.server import ServerProcess, free_port
from testkit.signing import ClientKey, claims, jwks
from tests.e2e.audit_db import audit_engine, wait_for_invocations
from tests.e2e.auth_tokens import (
    ALLOWED_ORIGIN,
    BAD_TOKENS,
    DISCOVERY,
    EHR,
    EHR_EC,
    EHR_RSA,
    INTAKE,
    INTAKE_CANONICAL,
    NO_DETAIL,
    OFFLINE,
    PUBLIC_URL,
    SANDBOX,
    SANDBOX_JKU,
    SANDBOX_KEY,
    ehr_token,
    sandbox_token,
)
from tests.e2e.conftest import ServerFactory
from tests.e2e.jwks_server import JwksPublisher
from tests.e2e.misbehaving_server import BadAnswer, misbehaving_server

#: every token sent, so the last test can check none reached a log
SENT: list[str] = []


#: an issuer whose key server drips its JWKS, a byte a second (each within the 2 s timeout)
DRIPPING = "https://dripping-issuer.example.org"
DRIPPING_KEY = ClientKey.es384("drip-1")
DRIPPING_JWKS = BadAnswer(json.dumps(jwks(DRIPPING_KEY)).encode(), drip=6, interval=1.0)


class Env:
    def __init__(self, first: ServerProcess, second: ServerProcess, publisher: JwksPublisher):
        self.first = first
        self.second = second
        self.publisher = publisher


@pytest.fixture(scope="module")
def env(server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with (
        JwksPublisher(jwks(EHR_EC, EHR_RSA)).running() as publisher,
        misbehaving_server(DRIPPING_JWKS) as dripping,
    ):
        issuers = {
            "issuers": [
                {"iss": EHR, "jku": publisher.url, "tenant": "clinic-a"},
                {"iss": SANDBOX, "jku": SANDBOX_JKU, "jwks": jwks(SANDBOX_KEY)},
                # its key server is down: nothing listens on this port
                {"iss": OFFLINE, "jku": f"http://127.0.0.1:{free_port()}/jwks.json"},
                {"iss": DRIPPING, "jku": dripping + "/jwks.json"},
            ]
        }
        path: Path = tmp_path_factory.mktemp("auth") / "trusted-issuers.json"
        path.write_text(json.dumps(issuers))
        server_env = {
            "CDS_AUTH": "on",
            "CDS_PUBLIC_URL": PUBLIC_URL,
            "CDS_TRUSTED_ISSUERS": str(path),
            "CORS_ORIGINS": f"{ALLOWED_ORIGIN},https://portal.example.org",
            "JWT_LEEWAY_SECONDS": "5",
            "JWKS_TIMEOUT_SECONDS": "2",
            "AUDIT_REFUSAL_WINDOW_SECONDS": "1",
            "AUDIT_SPOOL_DRAIN_SECONDS": "0.2",
        }
        yield Env(server_factory(server_env), server_factory(server_env), publisher)


def call(
    server: ServerProcess, path: str, token: str | None, body: Any = None, **headers: str
) -> requests.Response:
    if token is not None:
        SENT.append(token)
        headers["Authorization"] = f"Bearer {token}"
    if body is None:
        return requests.get(server.url(path), headers=headers, timeout=10)
    return requests.post(server.url(path), json=body, headers=headers, timeout=10)


def assert_unauthorized(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert response.json() == NO_DETAIL
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def wait_for_log(server: ServerProcess, text: str, timeout: float = 5.0) -> list[str]:
    """The server's log lines containing ``text``, once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in server.log().splitlines() if text in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def last_rejection(server: ServerProcess) -> str:
    """The newest rejection message (log lines are JSON objects, or plain text)."""
    lines = [line for line in server.log().splitlines() if "401 GET /cds-services:" in line]
    if not lines:
        return ""
    try:
        return str(json.loads(lines[-1])["message"])
    except (ValueError, KeyError, TypeError):
        return lines[-1]


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_token_gets_401_without_detail(env: Env, case: str) -> None:
    make, reason = BAD_TOKENS[case]
    before = env.first.log().count("401 GET /cds-services:")
    assert_unauthorized(call(env.first, DISCOVERY, make()))
    # ...and the server knows why: the reason is in its log (INFO), not in the body
    deadline = time.monotonic() + 2
    while env.first.log().count("401 GET /cds-services:") == before:
        assert time.monotonic() < deadline, "no rejection logged"
        time.sleep(0.02)
    assert reason in last_rejection(env.first)


@pytest.mark.parametrize(
    "authorization", ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a b", "Token abc"]
)
def test_a_missing_or_malformed_authorization_header_gets_401(env: Env, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    assert_unauthorized(requests.get(env.first.url(DISCOVERY), headers=headers, timeout=10))


@pytest.mark.parametrize("key", [EHR_EC, EHR_RSA], ids=["ES384", "RS384"])
def test_a_good_token_from_a_jku_issuer_is_accepted(env: Env, key: ClientKey) -> None:
    response = call(env.first, DISCOVERY, ehr_token(key=key))
    assert response.status_code == 200, response.text
    assert response.json()["services"]
    assert env.publisher.hits >= 1  # keys came from the issuer's jku


def test_a_sandbox_style_token_is_accepted_with_pinned_keys(env: Env) -> None:
    response = call(env.first, DISCOVERY, sandbox_token(DISCOVERY))
    assert response.status_code == 200, response.text


def test_a_dripping_key_server_cannot_hold_a_call_past_the_jwks_deadline(env: Env) -> None:
    token = DRIPPING_KEY.sign(claims(DRIPPING, PUBLIC_URL + DISCOVERY))
    assert_unauthorized(call(env.first, DISCOVERY, token))
    [line] = wait_for_log(env.first, "no complete answer within 2.0s")
    assert "JWKS refresh failed" in line and '"level": "WARNING"' in line
    assert DRIPPING_JWKS.outcome() == "client gone"


def test_the_token_protects_discovery_services_and_feedback(env: Env) -> None:
    body = {"hook": "questionnaire-inprogress", "hookInstance": str(uuid.uuid4()), "context": {}}
    assert_unauthorized(call(env.first, DISCOVERY, None))
    assert_unauthorized(call(env.first, INTAKE, None, body))
    assert_unauthorized(call(env.first, INTAKE + "/feedback", None, {"feedback": []}))
    # a token for one endpoint does not open another
    assert_unauthorized(call(env.first, INTAKE, ehr_token(DISCOVERY), body))


def test_a_replayed_jti_is_refused_across_processes(env: Env, database_url: str) -> None:
    token = ehr_token()
    assert call(env.first, DISCOVERY, token).status_code == 200
    assert_unauthorized(call(env.first, DISCOVERY, token))
    assert_unauthorized(call(env.second, DISCOVERY, token))

    # and the other way round: first seen by the second process
    other = sandbox_token(DISCOVERY)
    assert call(env.second, DISCOVERY, other).status_code == 200
    assert_unauthorized(call(env.first, DISCOVERY, other))


def test_a_hook_call_replayed_on_another_pod_gets_401_no_card_and_only_a_refusal_count(
    env: Env, database_url: str
) -> None:
    """Issue 15: a hook call's jti is settled with its audit record. The two servers are
    two pods (each its own replay ledger) sharing PostgreSQL: the replay is found by the
    audit statement, and still no card leaves, no invocation row is written."""
    since = datetime.now(UTC)
    token = ehr_token(INTAKE)
    original, replay = critical_card_call(), critical_card_call()
    accepted = call(env.first, INTAKE, token, original)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["cards"]
    refused = call(env.second, INTAKE, token, replay)
    assert_unauthorized(refused)
    assert "cards" not in refused.text
    assert wait_for_log(env.second, "found with the audit write")
    # and within the first pod its ledger refuses it at the gate
    assert_unauthorized(call(env.first, INTAKE, token, critical_card_call()))
    with audit_engine(database_url) as engine:
        [row] = wait_for_invocations(engine, "hook_instance = :i", 1, i=original["hookInstance"])
        assert (row["http_status"], row["client_iss"]) == (200, EHR)
        assert wait_for_invocations(engine, "hook_instance = :i", 0, i=replay["hookInstance"]) == []
        deadline = time.monotonic() + 15
        while _refused_401s(engine, since) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _refused_401s(engine, since) >= 2


def _refused_401s(engine: Any, since: datetime) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT coalesce(sum(count), 0) FROM refused_call "
                "WHERE http_status = 401 AND client_key = '127.0.0.1' AND last_at >= :since"
            ),
            {"since": since},
        ).scalar_one()
    return int(found)


def test_the_caller_is_audited_and_401s_are_counted_not_recorded_one_by_one(
    env: Env, database_url: str
) -> None:
    since = datetime.now(UTC)
    instance = str(uuid.uuid4())
    body = {
        "hook": "questionnaire-inprogress",
        "hookInstance": instance,
        "context": {
            "questionnaireResponse": {
                "resourceType": "QuestionnaireResponse",
                "status": "in-progress",
                "questionnaire": INTAKE_CANONICAL,
                "item": [],
            }
        },
    }
    accepted = call(env.first, INTAKE, ehr_token(INTAKE), body)
    assert accepted.status_code not in (401, 500), accepted.text

    probe = f"probe-{uuid.uuid4()}"  # an unknown service: the 401 comes before the 404
    expired = ehr_token(f"/cds-services/{probe}", iat=int(time.time()) - 600, lifetime=-300)
    for _ in range(3):
        assert_unauthorized(call(env.first, f"/cds-services/{probe}", expired, body))

    with audit_engine(database_url) as engine:
        [row] = wait_for_invocations(engine, "hook_instance = :i", 1, i=instance)
        assert row["client_iss"] == EHR
        assert row["tenant"] == "clinic-a"
        assert row["http_status"] == accepted.status_code
        # the audit never holds a token
        assert all("eyJ" not in str(value) for value in row.values())
        # strangers' 401s are counted per client and window, not one row each
        assert wait_for_invocations(engine, "service_id = :s", 0, s=probe) == []
        deadline = time.monotonic() + 15
        while _refused_401s(engine, since) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _refused_401s(engine, since) >= 3


def test_the_sandbox_preflight_gets_cors_headers(env: Env) -> None:
    response = requests.options(
        env.first.url(INTAKE),
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    # the browser must be able to read a 401 too
    denied = call(env.first, DISCOVERY, None, Origin=ALLOWED_ORIGIN)
    assert denied.status_code == 401
    assert denied.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


def test_a_disallowed_origin_gets_no_cors_headers_and_is_logged(env: Env) -> None:
    origin = f"https://evil-{uuid.uuid4().hex[:8]}.example"
    response = requests.options(
        env.first.url(INTAKE),
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )
    assert not [name for name in response.headers if name.lower().startswith("access-control")]
    # the refusal is visible server-side: one INFO line naming the origin
    refused = wait_for_log(env.first, f"CORS origin refused: {origin}")
    assert len(refused) == 1 and '"level": "INFO"' in refused[0]
    plain = call(env.first, DISCOVERY, ehr_token(), Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_trusting_the_sandbox_is_a_warning_at_start_up(env: Env) -> None:
    # the env trusts the sandbox's iss (with test keys pinned): the log says what that means
    [line] = wait_for_log(env.first, "private key is public")
    assert '"level": "WARNING"' in line and SANDBOX in line


def test_no_token_ever_reaches_the_server_log(env: Env) -> None:
    assert len(SENT) > 20
    logs = env.first.log() + env.second.log()
    assert "jti replayed" in logs  # the reason is logged server-side...
    for token in SENT:
        for part in token.split("."):
            if len(part) > 16:
                assert part not in logs  # ...but never the token or any part of it
    assert "Traceback" not in logs


def test_feedback_is_taken_only_from_the_issuer_the_card_was_issued_to(env: Env) -> None:
    qr = build_qr({"id": "feedback-issuer", "answers": {"saddle-anaesthesia": "yes"}})
    qr["status"] = "completed"
    body = {
        "hook": "questionnaire-inprogress",
        "hookInstance": str(uuid.uuid4()),
        "context": {"questionnaireResponse": qr},
    }
    issued = call(env.first, INTAKE, ehr_token(INTAKE), body)
    assert issued.status_code == 200, issued.text
    card = issued.json()["cards"][0]["uuid"]
    feedback = {
        "feedback": [
            {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-12-01T12:00:00Z"}
        ]
    }
    path = INTAKE + "/feedback"
    # another trusted issuer (the sandbox entry) cannot speak for the EHR's card
    other = call(env.second, path, sandbox_token(path), feedback)
    assert other.status_code == 400
    assert "never issued" in other.json()["issue"][0]["diagnostics"]
    own = call(env.second, path, ehr_token(path), feedback)
    assert own.status_code == 200, own.text
