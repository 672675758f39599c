"""Which fhirServer this service may call: per issuer with auth on, FHIR_SERVERS_ALLOWED off."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.auth.fhir_servers import FhirServerPolicy
from service.auth.issuers import parse_trusted_issuers
from service.config import ConfigError, Settings
from service.http.security import check_settings, fhir_server_policy
from tests.unit.auth_fakes import EHR, JKU

SANDBOX = "https://sandbox.cds-hooks.org"
BASE = "https://fhir.example.org/r4"


def _policy() -> FhirServerPolicy:
    issuers = parse_trusted_issuers(
        {
            "issuers": [
                {"iss": EHR, "jku": JKU, "fhirServers": [BASE + "/", "https://other.example:8443"]},
                {"iss": SANDBOX, "jku": JKU},
            ]
        },
        "issuers.json",
    )
    return FhirServerPolicy.for_issuers(issuers)


@pytest.mark.parametrize(
    "url",
    [
        BASE,
        BASE + "/",
        BASE + "/tenant-7",
        "https://FHIR.example.org/r4",
        "https://fhir.example.org:443/r4",
        "https://other.example:8443",
        "https://other.example:8443/any/path",
    ],
)
def test_a_listed_fhir_server_is_allowed_for_its_issuer(url: str) -> None:
    assert _policy().allows(EHR, url) is True


@pytest.mark.parametrize(
    "url",
    [
        "https://fhir.example.org/r40",  # not a path boundary
        "https://fhir.example.org/",
        "https://fhir.example.org",
        "http://fhir.example.org/r4",  # scheme
        "https://fhir.example.org:8443/r4",  # port
        "https://other.example/any",  # port 443, not 8443
        "https://fhir.example.org.evil.example/r4",
        "https://evil.example/r4",
        "https://user@fhir.example.org/r4",
        "https://fhir.example.org@evil.example/r4",
        "https://fhir.example.org/r4/../admin",
        "https://fhir.example.org/r4/%2e%2E/admin",
        "https://fhir.example.org/r4/..%2fadmin",
        "https://fhir.example.org/r4\\..\\admin",
        "https://fhir.example.org/r4?_format=xml",
        "https://fhir.example.org/r4#x",
        "ftp://fhir.example.org/r4",
        "//fhir.example.org/r4",
        "fhir.example.org/r4",
        "",
        "https://fhir.example.org/r4/\x00",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    assert _policy().allows(EHR, url) is False


def test_another_issuer_or_no_issuer_gets_nothing_listed_for_someone_else() -> None:
    policy = _policy()
    assert policy.allows(SANDBOX, BASE) is False  # trusted, but lists no fhirServer
    assert policy.allows("https://unknown.example", BASE) is False
    assert policy.allows(None, BASE) is False  # auth on: an anonymous call names none


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8081/fhir",
        "http://127.0.0.1/fhir",
        "http://localhost:1/x",
        "http://LOCALHOST:9999",
        "http://[::1]:8080/fhir",
    ],
)
def test_without_auth_the_default_is_loopback_on_any_port(url: str) -> None:
    assert FhirServerPolicy.without_auth(()).allows(None, url) is True


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8081/fhir",
        "http://127.0.0.2:8081/fhir",
        "http://10.0.0.1/fhir",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost.evil.example/fhir",
        "http://0.0.0.0:8080/",
        "https://fhir.example.org/r4",
    ],
)
def test_without_auth_nothing_else_by_default(url: str) -> None:
    assert FhirServerPolicy.without_auth(()).allows(None, url) is False


def test_fhir_servers_allowed_replaces_the_loopback_default() -> None:
    policy = FhirServerPolicy.without_auth((BASE, "http://10.1.2.3:8080/fhir"))
    assert policy.allows(None, BASE + "/Patient") is True
    assert policy.allows(None, "http://10.1.2.3:8080/fhir") is True
    assert policy.allows(None, "http://10.1.2.3/fhir") is False
    assert policy.allows(None, "http://127.0.0.1:8080/fhir") is False


def test_the_policy_follows_the_settings(tmp_path: Any) -> None:
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({"issuers": [{"iss": EHR, "jku": JKU, "fhirServers": [BASE]}]}))
    with_auth = fhir_server_policy(Settings(trusted_issuers_file=issuers))
    assert with_auth.allows(EHR, BASE) and not with_auth.allows(None, "http://127.0.0.1:1/")
    without = fhir_server_policy(Settings.from_env({"CDS_AUTH": "off"}))
    assert without.allows(None, "http://127.0.0.1:1/") and not without.allows(EHR, BASE)
    listed = fhir_server_policy(
        Settings.from_env({"CDS_AUTH": "off", "FHIR_SERVERS_ALLOWED": f" {BASE} ,"})
    )
    assert listed.allows(None, BASE) and not listed.allows(None, "http://127.0.0.1:1/")


BAD_FHIR_SERVERS = [
    ("https://fhir.example.org/r4", "fhirServers: must be a list of base URLs"),
    ([7], "fhirServers[0]: must be an absolute http(s) URL"),
    (["fhir.example.org/r4"], "fhirServers[0]: must be an absolute http(s) URL"),
    ([BASE, "ftp://x/r4"], "fhirServers[1]: must be an absolute http(s) URL"),
    (["https://u:p@fhir.example.org/r4"], "fhirServers[0]: must not carry a user or password"),
    ([BASE + "?x=1"], "fhirServers[0]: must not carry a query or fragment"),
    ([BASE + "/../admin"], "fhirServers[0]: must not contain '.' or '..' segments"),
]


@pytest.mark.parametrize(("value", "message"), BAD_FHIR_SERVERS)
def test_a_bad_fhir_servers_list_names_the_file_and_field(value: Any, message: str) -> None:
    document = {"issuers": [{"iss": EHR, "jku": JKU, "fhirServers": value}]}
    with pytest.raises(ConfigError) as caught:
        parse_trusted_issuers(document, "issuers.json")
    assert str(caught.value).startswith(f"issuers.json: issuers[0].{message.split(':')[0]}")
    assert message in str(caught.value)


def test_a_bad_fhir_servers_allowed_setting_stops_the_start() -> None:
    settings = Settings.from_env({"CDS_AUTH": "off", "FHIR_SERVERS_ALLOWED": "localhost:8080"})
    with pytest.raises(ConfigError, match="FHIR_SERVERS_ALLOWED: 'localhost:8080' must be"):
        check_settings(settings)
