"""Test-side CDS client keys: real EC P-384 / RSA 2048 keys and JWTs signed with them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass(frozen=True)
class ClientKey:
    """A CDS client's signing key pair, as a CDS client (an EHR, the sandbox) holds it."""

    kid: str
    alg: str  # ES384 | RS384
    private: Any

    @classmethod
    def es384(cls, kid: str = "ec-1") -> ClientKey:
        return cls(kid, "ES384", ec.generate_private_key(ec.SECP384R1()))

    @classmethod
    def rs384(cls, kid: str = "rsa-1") -> ClientKey:
        return cls(kid, "RS384", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def public_jwk(self) -> dict[str, Any]:
        to_jwk = ECAlgorithm.to_jwk if self.alg == "ES384" else RSAAlgorithm.to_jwk
        jwk: dict[str, Any] = to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, "typ": "JWT", **header}
        headers = {name: value for name, value in headers.items() if value is not None}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def jwks(*keys: ClientKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def claims(iss: str, aud: str, *, lifetime: int = 300, **overrides: Any) -> dict[str, Any]:
    """Claims the way CDS clients send them: iat now, exp = iat + 5 min, uuid jti."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}
