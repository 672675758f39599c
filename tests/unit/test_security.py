"""Unit behaviour of the CDS client authentication (no server, no database)."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from service.config import ConfigError, Settings
from service.http.security import (
    JWKS_MIN_REFRESH_SECONDS,
    KeySourceError,
    TokenRejected,
    TokenVerifier,
    bearer_token,
    build_verifier,
    check_settings,
    cors_origins,
    load_trusted_issuers,
    needs_authentication,
    parse_trusted_issuers,
)
from testkit.signing import ClientKey, claims, jwks

EHR = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
AUD = "https://cds.example.org/cds-services/backpain-redflags-patient-view"

EC_KEY = ClientKey.es384("ec-1")
RSA_KEY = ClientKey.rs384("rsa-1")


class FakeJtiStore:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        if (iss, jti) in self.seen:
            return False
        self.seen[(iss, jti)] = expires_at
        return True


class FakeKeyServer:
    """Stands in for the issuers' JWKS URLs; counts fetches."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.fetches = 0

    def __call__(self, url: str, timeout: float) -> Any:
        self.fetches += 1
        if url not in self.documents:
            raise KeySourceError(f"{url} unreachable")
        return self.documents[url]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(
    config: dict[str, Any] | None = None,
    keys: FakeKeyServer | None = None,
    clock: FakeClock | None = None,
) -> tuple[TokenVerifier, FakeJtiStore]:
    config = config or {"issuers": [{"iss": EHR, "jku": JKU, "tenant": "clinic-a"}]}
    store = FakeJtiStore()
    built = TokenVerifier(
        parse_trusted_issuers(config, "test"),
        store,
        leeway=30,
        fetch=keys or FakeKeyServer({JKU: jwks(EC_KEY, RSA_KEY)}),
        clock=clock or FakeClock(),
    )
    return built, store


# -- trusted issuers file ------------------------------------------------------------------

P256_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "kid": "p256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}

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
    assert sandbox_keys is not None and [k.kid for k in sandbox_keys] == ["ec-1"]
    assert parsed["urn:static"].jku is None


def test_the_issuer_file_must_exist_and_be_json(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=r"CDS_TRUSTED_ISSUERS \(.*absent.json\): cannot be read"):
        load_trusted_issuers(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken.json\): is not valid JSON"):
        load_trusted_issuers(broken)


def test_auth_on_without_an_issuer_file_refuses_to_start() -> None:
    settings = Settings(auth_enabled=True, trusted_issuers_file=None)
    with pytest.raises(ConfigError, match="CDS_TRUSTED_ISSUERS: required while CDS_AUTH is on"):
        build_verifier(settings, FakeJtiStore())
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


# -- the verifier --------------------------------------------------------------------------


@pytest.mark.parametrize("key", [EC_KEY, RSA_KEY], ids=["ES384", "RS384"])
def test_a_good_token_names_its_issuer_and_tenant(key: ClientKey) -> None:
    check, store = verifier()
    client = check.verify(key.sign(claims(EHR, AUD)), AUD)
    assert client.iss == EHR
    assert client.tenant == "clinic-a"
    assert list(store.seen) == [(EHR, client.jti)]
    # the jti is remembered until the token expires (plus the clock leeway)
    assert store.seen[(EHR, client.jti)].timestamp() > time.time() + 300


def test_the_tenant_claim_wins_over_the_configured_tenant() -> None:
    check, _ = verifier()
    client = check.verify(EC_KEY.sign(claims(EHR, AUD, tenant="clinic-b")), AUD)
    assert client.tenant == "clinic-b"


def test_a_replayed_jti_is_refused() -> None:
    check, _ = verifier()
    token = EC_KEY.sign(claims(EHR, AUD))
    check.verify(token, AUD)
    with pytest.raises(TokenRejected, match="jti replayed"):
        check.verify(token, AUD)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(header)}.{_b64(payload)}."


def _tampered() -> str:
    header, _, signature = EC_KEY.sign(claims(EHR, AUD)).split(".")
    return f"{header}.{_b64(claims(EHR, AUD, tenant='someone-else'))}.{signature}"


REJECTED = {
    "garbage": (lambda: "not-a-jwt", "malformed JWT header"),
    "alg none": (
        lambda: _unsigned({"alg": "none", "kid": "ec-1"}, claims(EHR, AUD)),
        "alg 'none' is not allowed",
    ),
    "HS256": (
        lambda: jwt.encode(
            claims(EHR, AUD), "secret-key-of-32-bytes-or-more!!", "HS256", headers={"kid": "ec-1"}
        ),
        "alg 'HS256' is not allowed",
    ),
    "ES256": (
        lambda: _unsigned({"alg": "ES256", "kid": "ec-1"}, claims(EHR, AUD)),
        "alg 'ES256' is not allowed",
    ),
    "no kid": (lambda: EC_KEY.sign(claims(EHR, AUD), kid=None), "kid missing"),
    "no iss": (lambda: EC_KEY.sign(claims(None, AUD)), "iss missing"),  # type: ignore[arg-type]
    "unknown iss": (lambda: EC_KEY.sign(claims("https://evil.example", AUD)), "not a trusted"),
    "other jku": (
        lambda: EC_KEY.sign(claims(EHR, AUD), jku="https://evil.example/jwks.json"),
        "jku 'https://evil.example/jwks.json' is not the one allowed",
    ),
    "unknown kid": (lambda: EC_KEY.sign(claims(EHR, AUD), kid="ec-9"), "no key 'ec-9'"),
    "RS384 header on an EC key": (
        lambda: RSA_KEY.sign(claims(EHR, AUD), kid="ec-1"),
        "key 'ec-1' of 'https://ehr.example.org' cannot verify RS384",
    ),
    "tampered": (_tampered, "InvalidSignatureError"),
    "wrong aud": (lambda: EC_KEY.sign(claims(EHR, AUD + "-other")), "InvalidAudienceError"),
    "expired": (
        lambda: EC_KEY.sign(claims(EHR, AUD, iat=int(time.time()) - 400, lifetime=-100)),
        "ExpiredSignatureError",
    ),
    "iat in the future": (
        lambda: EC_KEY.sign(claims(EHR, AUD, iat=int(time.time()) + 120)),
        "ImmatureSignatureError",
    ),
    "nbf in the future": (
        lambda: EC_KEY.sign(claims(EHR, AUD, nbf=int(time.time()) + 120)),
        "ImmatureSignatureError",
    ),
    "no exp": (lambda: EC_KEY.sign(claims(EHR, AUD, exp=None)), 'missing the "exp" claim'),
    "no iat": (lambda: EC_KEY.sign(claims(EHR, AUD, iat=None)), 'missing the "iat" claim'),
    "no jti": (lambda: EC_KEY.sign(claims(EHR, AUD, jti=None)), 'missing the "jti" claim'),
    "jti not a string": (lambda: EC_KEY.sign(claims(EHR, AUD, jti=7)), "JWT ID must be a string"),
    "empty jti": (lambda: EC_KEY.sign(claims(EHR, AUD, jti="")), "jti missing"),
    "control characters in jti": (
        lambda: EC_KEY.sign(claims(EHR, AUD, jti="a\x00b")),
        "jti missing",
    ),
    "huge": (lambda: "a" * 20_000, "token longer than"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_a_bad_token_is_rejected_with_a_reason_for_the_log(case: str) -> None:
    make, reason = REJECTED[case]
    check, store = verifier()
    token = make()
    with pytest.raises(TokenRejected) as caught:
        check.verify(token, AUD)
    assert reason in str(caught.value)
    assert token not in str(caught.value)
    assert store.seen == {}


def test_leeway_tolerates_small_clock_skew() -> None:
    check, _ = verifier()
    skewed = claims(EHR, AUD, iat=int(time.time()) + 10, exp=int(time.time()) - 10)
    assert check.verify(EC_KEY.sign(skewed), AUD).iss == EHR


def test_pinned_keys_are_used_instead_of_fetching_the_jku() -> None:
    keys = FakeKeyServer({})
    check, _ = verifier({"issuers": [{"iss": EHR, "jku": JKU, "jwks": jwks(EC_KEY)}]}, keys=keys)
    assert check.verify(EC_KEY.sign(claims(EHR, AUD), jku=JKU), AUD).iss == EHR
    with pytest.raises(TokenRejected, match="no key 'rsa-1'"):
        check.verify(RSA_KEY.sign(claims(EHR, AUD)), AUD)
    assert keys.fetches == 0


def test_keys_are_cached_and_an_unknown_kid_refetches_at_a_bounded_rate() -> None:
    keys = FakeKeyServer({JKU: jwks(EC_KEY)})
    clock = FakeClock()
    check, _ = verifier(keys=keys, clock=clock)
    for _ in range(3):
        check.verify(EC_KEY.sign(claims(EHR, AUD)), AUD)
    assert keys.fetches == 1

    # the issuer rotates in a new key: an unknown kid triggers one refetch...
    keys.documents[JKU] = jwks(EC_KEY, RSA_KEY)
    clock.now += JWKS_MIN_REFRESH_SECONDS
    assert check.verify(RSA_KEY.sign(claims(EHR, AUD)), AUD).iss == EHR
    assert keys.fetches == 2
    # ...but a flood of unknown kids cannot make us hammer the issuer
    for index in range(5):
        with pytest.raises(TokenRejected, match="no key"):
            check.verify(EC_KEY.sign(claims(EHR, AUD), kid=f"unknown-{index}"), AUD)
    assert keys.fetches == 2


def test_a_jwks_outage_keeps_the_keys_already_known() -> None:
    keys = FakeKeyServer({JKU: jwks(EC_KEY)})
    clock = FakeClock()
    check, _ = verifier(keys=keys, clock=clock)
    check.verify(EC_KEY.sign(claims(EHR, AUD)), AUD)
    del keys.documents[JKU]
    clock.now += 3600  # cache expired, refresh fails
    assert check.verify(EC_KEY.sign(claims(EHR, AUD)), AUD).iss == EHR
    assert keys.fetches == 2


def test_an_unreachable_jwks_is_a_rejection_not_a_crash() -> None:
    check, _ = verifier(keys=FakeKeyServer({}))
    with pytest.raises(TokenRejected, match="no key 'ec-1'"):
        check.verify(EC_KEY.sign(claims(EHR, AUD)), AUD)


def test_unusable_keys_in_a_fetched_jwks_are_skipped() -> None:
    document = {
        "keys": [P256_JWK, {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, "x", EC_KEY.public_jwk()]
    }
    check, _ = verifier(keys=FakeKeyServer({JKU: document}))
    assert check.verify(EC_KEY.sign(claims(EHR, AUD)), AUD).iss == EHR


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
