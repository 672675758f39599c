"""The Flask side of client authentication: bearer header, which paths, settings, CORS."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.auth.verifier import TokenRejected
from service.config import ConfigError, Settings
from service.http.security import (
    bearer_token,
    build_verifier,
    check_settings,
    cors_origins,
    install_cors,
    needs_authentication,
)
from testkit.signing import claims, jwks
from tests.unit.auth_fakes import AUD, EC_KEY, EHR, FakeReplayStore


def test_auth_on_without_an_issuer_file_refuses_to_start() -> None:
    settings = Settings(auth_enabled=True, trusted_issuers_file=None)
    with pytest.raises(ConfigError, match="CDS_TRUSTED_ISSUERS: required while CDS_AUTH is on"):
        build_verifier(settings, FakeReplayStore())
    with pytest.raises(ConfigError, match="CDS_TRUSTED_ISSUERS: required while CDS_AUTH is on"):
        check_settings(settings)


def test_settings_are_checked_before_a_server_starts(tmp_path: Path) -> None:
    check_settings(Settings(auth_enabled=False, cors_origins=("https://portal.example.org",)))
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        check_settings(Settings(auth_enabled=False, cors_origins=("*",)))
    broken = tmp_path / "issuers.json"
    broken.write_text('{"issuers": [{"iss": "x"}]}')
    with pytest.raises(ConfigError, match=r"issuers.json\): issuers\[0\]: give 'jku'"):
        check_settings(Settings(auth_enabled=True, trusted_issuers_file=broken))


# -- request plumbing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("Bearer  abc-_.d=f.g", "abc-_.d=f.g"),
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("abc.def.ghi", None),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/cds-services", True),
        ("POST", "/cds-services/x", True),
        ("POST", "/cds-services/x/feedback", True),
        ("OPTIONS", "/cds-services/x", False),
        ("GET", "/cds-servicesX", False),
        ("GET", "/healthz", False),
        ("GET", "/Questionnaire/intake", False),
    ],
)
def test_which_requests_need_a_token(method: str, path: str, needed: bool) -> None:
    assert needs_authentication(method, path) is needed


def test_cors_origins_are_exact() -> None:
    assert cors_origins(["https://sandbox.cds-hooks.org", "http://localhost:3000/"]) == [
        "https://sandbox.cds-hooks.org",
        "http://localhost:3000",
    ]
    for bad in ["*", "https://*.example.org", "portal.example.org", "https://x.org/path"]:
        with pytest.raises(ConfigError, match="CORS_ORIGINS"):
            cors_origins([bad])


def test_the_verifier_takes_its_limits_from_the_settings(tmp_path: Path) -> None:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": EHR, "jwks": jwks(EC_KEY)}]}))
    hour = EC_KEY.sign(claims(EHR, AUD, lifetime=3600))
    strict = build_verifier(Settings(trusted_issuers_file=issuers), FakeReplayStore())
    with pytest.raises(TokenRejected, match="lifetime of 3600s exceeds 300s"):
        strict.verify(hour, AUD)
    env = {"CDS_TRUSTED_ISSUERS": str(issuers), "JWT_MAX_LIFETIME_SECONDS": "3600"}
    relaxed = build_verifier(Settings.from_env(env), FakeReplayStore())
    assert relaxed.verify(hour, AUD).iss == EHR


def _preflight(client: FlaskClient, origin: str) -> None:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    client.options("/cds-services/x", headers=headers)


@pytest.mark.parametrize("allowed", [["https://portal.example.org"], []], ids=["listed", "none"])
def test_a_preflight_from_a_refused_origin_is_logged_once(
    allowed: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    app = Flask(__name__)
    app.add_url_rule("/cds-services/x", "x", lambda: {}, methods=["POST"])
    install_cors(app, allowed)
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="service.http.security"):
        _preflight(client, "https://evil.example")
        _preflight(client, "https://portal.example.org")
        # not a preflight: the browser enforces CORS on the answer, nothing refused here
        client.post("/cds-services/x", headers={"Origin": "https://evil.example"})
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CORS")]
    expected = ["CORS origin refused: https://evil.example"]
    if not allowed:
        expected.append("CORS origin refused: https://portal.example.org")
    assert refused == expected
    assert all(r.levelno == logging.INFO for r in caplog.records if "CORS" in r.getMessage())


def test_trusting_an_issuer_whose_private_key_is_public_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = {"iss": "https://sandbox.cds-hooks.org", "jwks": jwks(EC_KEY)}
    for name, listed, warned in [("ehr", [], False), ("sandbox", [sandbox], True)]:
        issuers = tmp_path / f"{name}.json"
        issuers.write_text(json.dumps({"issuers": [{"iss": EHR, "jwks": jwks(EC_KEY)}, *listed]}))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="service.http.security"):
            build_verifier(Settings(trusted_issuers_file=issuers), FakeReplayStore())
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        if not warned:
            assert warnings == []
            continue
        [warning] = warnings
        assert "https://sandbox.cds-hooks.org" in warning
        assert "private key is public" in warning
