"""The trusted issuers file (``CDS_TRUSTED_ISSUERS``): parsing, and errors naming file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.auth.issuers import load_trusted_issuers, parse_trusted_issuers
from service.config import ConfigError
from testkit.signing import jwks
from tests.unit.auth_fakes import EC_KEY, EHR, JKU, P256_JWK, RSA_KEY

# -- trusted issuers file ------------------------------------------------------------------


BAD_CONFIGS = [
    ([], "must be a JSON object"),
    ({"issuer": []}, "must be a JSON object"),
    ({"issuers": ["x"]}, "issuers[0]: must be an object"),
    ({"issuers": [{"jku": JKU}]}, "issuers[0].iss: is required"),
    ({"issuers": [{"iss": "", "jku": JKU}]}, "issuers[0].iss: must be a non-empty string"),
    ({"issuers": [{"iss": EHR}]}, "issuers[0]: give 'jku'"),
    ({"issuers": [{"iss": EHR, "jku": "ftp://x/jwks"}]}, "issuers[0].jku: must be an absolute"),
    ({"issuers": [{"iss": EHR, "jku": "jwks.json"}]}, "issuers[0].jku: must be an absolute"),
    ({"issuers": [{"iss": EHR, "jwks": []}]}, "issuers[0].jwks: must be a JWK Set"),
    ({"issuers": [{"iss": EHR, "jwks": {"keys": []}}]}, "issuers[0].jwks.keys: is empty"),
    ({"issuers": [{"iss": EHR, "jwks": {"keys": [P256_JWK]}}]}, "jwks.keys[0]: is neither"),
    (
        {"issuers": [{"iss": EHR, "jwks": {"keys": [{**EC_KEY.public_jwk(), "kid": None}]}}]},
        "jwks.keys[0]: has no 'kid'",
    ),
    (
        {"issuers": [{"iss": EHR, "jwks": {"keys": [{**EC_KEY.public_jwk(), "alg": "HS256"}]}}]},
        "jwks.keys[0]: 'alg' 'HS256' is not one of",
    ),
    (
        {
            "issuers": [
                {"iss": EHR, "jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}}
            ]
        },
        "jwks.keys[0]: 'kty' 'oct' is not EC or RSA",
    ),
    (
        {"issuers": [{"iss": EHR, "jwks": {"keys": [{**EC_KEY.public_jwk(), "d": "AAAA"}]}}]},
        "jwks.keys[0]: holds a private key",
    ),
    ({"issuers": [{"iss": EHR, "jku": JKU, "tenant": 7}]}, "issuers[0].tenant: must be"),
    ({"issuers": [{"iss": EHR, "jku": JKU, "jwk": {}}]}, "issuers[0]: unknown field(s) jwk"),
    (
        {"issuers": [{"iss": EHR, "jku": JKU}, {"iss": EHR, "jku": JKU}]},
        "issuers[1].iss: 'https://ehr.example.org' is listed twice",
    ),
]


@pytest.mark.parametrize(("document", "message"), BAD_CONFIGS)
def test_a_bad_issuer_list_names_the_file_and_field(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_trusted_issuers(document, "issuers.json")
    assert str(caught.value).startswith("issuers.json: ")
    assert message in str(caught.value)


def test_a_good_issuer_list_keeps_jku_pinned_keys_and_tenant() -> None:
    parsed = parse_trusted_issuers(
        {
            "issuers": [
                {"iss": EHR, "jku": JKU, "tenant": "clinic-a"},
                {"iss": "https://sandbox.cds-hooks.org", "jku": JKU, "jwks": jwks(EC_KEY)},
                {"iss": "urn:static", "jwks": jwks(RSA_KEY)},
            ]
        },
        "issuers.json",
    )
    assert parsed[EHR].jku == JKU and parsed[EHR].pinned_keys is None
    assert parsed[EHR].tenant == "clinic-a"
    sandbox_keys = parsed["https://sandbox.cds-hooks.org"].pinned_keys
    assert sandbox_keys is not None and [k.key_id for k in sandbox_keys] == ["ec-1"]
    assert parsed["urn:static"].jku is None


def test_the_issuer_file_must_exist_and_be_json(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=r"CDS_TRUSTED_ISSUERS \(.*absent.json\): cannot be read"):
        load_trusted_issuers(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken.json\): is not valid JSON"):
        load_trusted_issuers(broken)


def test_the_auth_package_imports_neither_flask_nor_the_audit() -> None:
    code = (
        "import sys, service.auth.issuers, service.auth.keys, service.auth.verifier\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'flask_cors'}"
        " or m.startswith('service.audit') or m.startswith('service.http')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
