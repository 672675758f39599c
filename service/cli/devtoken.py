"""Development-only CDS client credentials: a local EC P-384 key, the issuer entry that
trusts it, and CDS Hooks 2.0 client JWTs signed with it (``backpain-cds dev-token``).

Never for production: the issuer must be a loopback URL, so an entry made here is
recognisable in any trusted-issuers file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

DEFAULT_KEY = Path("var/dev-client-key.pem")
DEFAULT_ISSUER = "http://127.0.0.1/dev-client"
LIFETIME_SECONDS = 300  # what CDS clients send: exp = iat + 5 minutes
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DevTokenError(ValueError):
    """The request cannot be served (the message says why)."""


def check_issuer(iss: str) -> None:
    parts = urlsplit(iss)
    if parts.scheme not in {"http", "https"} or parts.hostname not in _LOOPBACK:
        raise DevTokenError(
            f"issuer {iss!r}: dev-token only signs for a loopback issuer "
            "(http://127.0.0.1/..., http://localhost/...); it is for development only"
        )


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The EC P-384 key in ``path`` (PEM); created with mode 0600 when missing."""
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp384r1":
            raise DevTokenError(f"{path}: not an EC P-384 private key (ES384)")
        return loaded
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return key


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The public key as a JWK whose ``kid`` is its RFC 7638 thumbprint."""
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**members, "kid": kid, "use": "sig", "alg": "ES384"}


def issuer_entry(key: ec.EllipticCurvePrivateKey, iss: str) -> dict[str, Any]:
    """A trusted-issuers entry pinning this key (no ``jku``: nothing is fetched)."""
    check_issuer(iss)
    return {"iss": iss, "jwks": {"keys": [public_jwk(key)]}}


def sign(
    key: ec.EllipticCurvePrivateKey, iss: str, audience: str, *, now: float | None = None
) -> str:
    """A client JWT as CDS clients send it: ``aud`` is the exact URL to be called."""
    check_issuer(iss)
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": iss,
        "aud": audience,
        "iat": issued,
        "exp": issued + LIFETIME_SECONDS,
        "jti": str(uuid.uuid4()),
    }
    headers = {"kid": public_jwk(key)["kid"], "typ": "JWT"}
    return jwt.encode(claims, key, algorithm="ES384", headers=headers)
