"""The token verifier and the issuers' keys (no server, no database)."""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

import jwt
import pytest

from service.auth.keys import JWKS_MIN_REFRESH_SECONDS
from service.auth.verifier import TokenRejected
from testkit.signing import ClientKey, claims, jwks
from tests.unit.auth_fakes import (
    AUD,
    EC_KEY,
    EHR,
    JKU,
    P256_JWK,
    RSA_KEY,
    FakeClock,
    FakeKeyServer,
    verifier,
)

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


def _b64(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(header)}.{_b64(payload)}."


def _tampered() -> str:
    header, _, signature = EC_KEY.sign(claims(EHR, AUD)).split(".")
    return f"{header}.{_b64(claims(EHR, AUD, tenant='someone-else'))}.{signature}"


REJECTED = {
    "garbage": (lambda: "not-a-jwt", "malformed JWT (DecodeError)"),
    "payload not an object": (
        lambda: f"{_b64({'alg': 'ES384', 'kid': 'ec-1'})}.{_b64([EHR])}.c2ln",
        "malformed JWT payload",
    ),
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
    "wrong aud": (
        lambda: EC_KEY.sign(claims(EHR, AUD + "-other")),
        f"aud mismatch: expected {AUD}, got '{AUD}-other'",
    ),
    "aud a list of others": (
        lambda: EC_KEY.sign(claims(EHR, ["https://a.example", "https://b.example"])),
        f"aud mismatch: expected {AUD}, got ['https://a.example', 'https://b.example']",
    ),
    "aud not a string": (
        lambda: EC_KEY.sign(claims(EHR, 42)),  # type: ignore[arg-type]
        f"aud mismatch: expected {AUD}, got 42",
    ),
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
    # a lifespan this short: the cached set is stale at every later call
    check, _ = verifier(keys=keys, clock=clock, lifespan=1e-9)
    check.verify(EC_KEY.sign(claims(EHR, AUD)), AUD)
    del keys.documents[JKU]
    clock.now += 3600  # cache expired, refresh allowed, and it fails
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


# -- time claims: numbers a trusted key may still sign -------------------------------------

#: case -> claims overriding good ones (a fresh ``now`` each time)
MALFORMED_TIMES: dict[str, Any] = {
    "exp 1e12 (a float)": lambda now: {"exp": 1e12},
    "exp 10**12 (an integer)": lambda now: {"exp": 10**12},
    "exp 1e20": lambda now: {"exp": 1e20},
    "exp 2**70": lambda now: {"exp": 2**70},
    "exp infinite": lambda now: {"exp": math.inf},
    "exp not a number": lambda now: {"exp": math.nan},
    "exp a string": lambda now: {"exp": str(now + 300)},
    "exp a fraction": lambda now: {"exp": now + 300.5},
    "exp negative": lambda now: {"exp": -5},
    "exp a boolean": lambda now: {"exp": True},
    "iat 1e20": lambda now: {"iat": 1e20},
    "iat a fraction": lambda now: {"iat": now + 0.5},
    "iat a string": lambda now: {"iat": str(now)},
    "iat far in the past": lambda now: {"iat": -(10**18)},
    "nbf 1e20": lambda now: {"nbf": 1e20},
    "nbf a string": lambda now: {"nbf": "now"},
    "nbf a fraction": lambda now: {"nbf": now - 0.5},
}


@pytest.mark.parametrize("case", sorted(MALFORMED_TIMES))
def test_a_malformed_time_claim_is_a_rejection_never_a_crash(case: str) -> None:
    check, store = verifier()
    token = EC_KEY.sign(claims(EHR, AUD, **MALFORMED_TIMES[case](int(time.time()))))
    with pytest.raises(TokenRejected):
        check.verify(token, AUD)
    assert store.seen == {}


def test_a_token_living_longer_than_the_maximum_lifetime_is_refused() -> None:
    check, _ = verifier()  # the default: 300 s, as the sandbox issues them, plus the leeway
    ten_years = EC_KEY.sign(claims(EHR, AUD, lifetime=10 * 365 * 86400))
    with pytest.raises(TokenRejected, match=r"lifetime of 315360000s exceeds 300s \(\+30s"):
        check.verify(ten_years, AUD)
    assert check.verify(EC_KEY.sign(claims(EHR, AUD, lifetime=330)), AUD).iss == EHR
    with pytest.raises(TokenRejected, match="lifetime of 331s exceeds"):
        check.verify(EC_KEY.sign(claims(EHR, AUD, lifetime=331)), AUD)


def test_the_maximum_lifetime_is_a_setting() -> None:
    check, _ = verifier(max_lifetime=3600)
    assert check.verify(EC_KEY.sign(claims(EHR, AUD, lifetime=3600)), AUD).iss == EHR
    with pytest.raises(TokenRejected, match="exceeds 3600s"):
        check.verify(EC_KEY.sign(claims(EHR, AUD, lifetime=7200)), AUD)


def test_an_aud_mismatch_shows_a_long_aud_truncated() -> None:
    check, _ = verifier()
    with pytest.raises(TokenRejected) as caught:
        check.verify(EC_KEY.sign(claims(EHR, "https://x.example/" + "a" * 5000)), AUD)
    message = str(caught.value)
    assert message.startswith(f"aud mismatch: expected {AUD}, got 'https://x.example/aaa")
    assert len(message) < 400
