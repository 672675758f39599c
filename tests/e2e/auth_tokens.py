"""CDS clients' keys and the tokens the auth tests send: good ones and every kind of bad one."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt

from testkit.signing import ClientKey, claims

PUBLIC_URL = "https://cds.example.org"
DISCOVERY = "/cds-services"
INTAKE = "/cds-services/backpain-redflags-intake"
EHR = "https://ehr.example.org"
SANDBOX = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
OFFLINE = "https://offline-issuer.example.org"
ALLOWED_ORIGIN = "https://sandbox.cds-hooks.org"
INTAKE_CANONICAL = "https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake"

EHR_EC = ClientKey.es384("ehr-ec")
EHR_RSA = ClientKey.rs384("ehr-rsa")
SANDBOX_KEY = ClientKey.es384("sandbox-1")
OFFLINE_KEY = ClientKey.es384("offline-1")

NO_DETAIL = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "login", "diagnostics": "Unauthorized"}],
}


def ehr_token(path: str = DISCOVERY, key: ClientKey = EHR_EC, **overrides: Any) -> str:
    return key.sign(claims(EHR, PUBLIC_URL + path, **overrides))


def sandbox_token(path: str) -> str:
    """Made the way the public CDS Hooks sandbox makes its own."""
    now = int(time.time())
    payload = {
        "iss": SANDBOX,
        "aud": PUBLIC_URL + path,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    return SANDBOX_KEY.sign(payload, jku=SANDBOX_JKU)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tampered() -> str:
    header, _, signature = ehr_token().split(".")
    forged = claims(EHR, PUBLIC_URL + DISCOVERY, tenant="another-clinic")
    return f"{header}.{_b64(forged)}.{signature}"


def _public_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization

    return EHR_RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hs256_with_public_key() -> str:
    # the classic algorithm-confusion attack: the public key used as an HMAC secret
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": EHR_RSA.kid})
    payload = _b64(claims(EHR, PUBLIC_URL + DISCOVERY))
    mac = hmac.new(_public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _alg_none() -> str:
    header = _b64({"alg": "none", "typ": "JWT", "kid": EHR_EC.kid})
    return f"{header}.{_b64(claims(EHR, PUBLIC_URL + DISCOVERY))}."


#: case -> (token maker, the reason the server logs for it)
BAD_TOKENS: dict[str, tuple[Callable[[], str], str]] = {
    "expired": (
        lambda: ehr_token(iat=int(time.time()) - 600, lifetime=-300),
        "ExpiredSignatureError",
    ),
    "not yet valid (iat)": (
        lambda: ehr_token(iat=int(time.time()) + 120),
        "not yet valid (iat)",
    ),
    "not yet valid (nbf)": (
        lambda: ehr_token(nbf=int(time.time()) + 120),
        "not yet valid (nbf)",
    ),
    "wrong aud": (
        lambda: EHR_EC.sign(claims(EHR, PUBLIC_URL + "/cds-services/other")),
        f"aud mismatch: expected {PUBLIC_URL}{DISCOVERY}, got '{PUBLIC_URL}/cds-services/other'",
    ),
    "aud of another host": (
        lambda: EHR_EC.sign(claims(EHR, "https://evil.example/cds-services")),
        f"aud mismatch: expected {PUBLIC_URL}{DISCOVERY}, got 'https://evil.example/cds-services'",
    ),
    "unknown iss": (
        lambda: EHR_EC.sign(claims("https://evil.example", PUBLIC_URL + DISCOVERY)),
        "is not a trusted issuer",
    ),
    "jku not on the list": (
        lambda: EHR_EC.sign(
            claims(EHR, PUBLIC_URL + DISCOVERY), jku="https://evil.example/jwks.json"
        ),
        "jku 'https://evil.example/jwks.json' is not the one allowed",
    ),
    "sandbox jku for the ehr issuer": (
        lambda: EHR_EC.sign(claims(EHR, PUBLIC_URL + DISCOVERY), jku=SANDBOX_JKU),
        "is not the one allowed",
    ),
    "alg none": (_alg_none, "alg 'none' is not allowed"),
    "HS256 with the public key as secret": (
        _hs256_with_public_key,
        "alg 'HS256' is not allowed",
    ),
    "HS256 via PyJWT": (
        lambda: jwt.encode(
            claims(EHR, PUBLIC_URL + DISCOVERY),
            "a-shared-secret-of-at-least-32-bytes!",
            algorithm="HS256",
            headers={"kid": EHR_EC.kid},
        ),
        "alg 'HS256' is not allowed",
    ),
    "missing kid": (
        lambda: EHR_EC.sign(claims(EHR, PUBLIC_URL + DISCOVERY), kid=None),
        "kid missing",
    ),
    "unknown kid": (
        lambda: EHR_EC.sign(claims(EHR, PUBLIC_URL + DISCOVERY), kid="rotated-away"),
        "no key 'rotated-away'",
    ),
    "missing jti": (lambda: ehr_token(jti=None), 'missing the "jti" claim'),
    "missing exp": (lambda: ehr_token(exp=None), 'missing the "exp" claim'),
    "missing iat": (lambda: ehr_token(iat=None), 'missing the "iat" claim'),
    "tampered payload": (_tampered, "InvalidSignatureError"),
    "signed by a key the issuer does not hold": (
        lambda: ClientKey.es384(EHR_EC.kid).sign(claims(EHR, PUBLIC_URL + DISCOVERY)),
        "InvalidSignatureError",
    ),
    "sandbox-made token signed by someone else": (
        lambda: OFFLINE_KEY.sign(
            claims(SANDBOX, PUBLIC_URL + DISCOVERY), kid=SANDBOX_KEY.kid, jku=SANDBOX_JKU
        ),
        "InvalidSignatureError",
    ),
    "JWKS server down": (
        lambda: OFFLINE_KEY.sign(claims(OFFLINE, PUBLIC_URL + DISCOVERY)),
        "no key 'offline-1'",
    ),
    "garbage": (lambda: "not.a.jwt", "malformed JWT"),
    # numbers a trusted key signed: a 401, never a 500, and never a token for years
    "exp 1e12": (lambda: ehr_token(exp=1e12), "exp is not an integer"),
    "exp 1e20": (lambda: ehr_token(exp=1e20), "exp is not an integer"),
    "exp 10**12": (lambda: ehr_token(exp=10**12), "lifetime of"),
    "exp a digit string": (
        lambda: ehr_token(exp=str(int(time.time()) + 300)),
        "exp is not an integer",
    ),
    "exp a fraction": (lambda: ehr_token(exp=time.time() + 300.5), "exp is not an integer"),
    "exp ten years ahead": (lambda: ehr_token(lifetime=10 * 365 * 86400), "lifetime of"),
    "iat a string": (lambda: ehr_token(iat="yesterday"), "must be an integer"),
    "nbf 1e20": (lambda: ehr_token(nbf=1e20), "not yet valid (nbf)"),
}
