"""A bench CDS client: its own signing keys, an issuers file for the service, token pools.

Every call carries a NEW token (replay protection rejects a ``jti`` seen before), the
way an EHR signs each call. Tokens are signed before a run, in a pool, so signing
costs nothing during the measurement.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from testkit.signing import ClientKey, claims, jwks

BENCH_ISSUER = "https://bench.backpain-cds.invalid"
#: As CDS clients do (the sandbox: exp = iat + 300); pools are signed just before each run.
TOKEN_LIFETIME_SECONDS = 300


@dataclass(frozen=True)
class BenchClient:
    es384: ClientKey
    rs384: ClientKey

    @classmethod
    def create(cls) -> BenchClient:
        return cls(ClientKey.es384("bench-ec"), ClientKey.rs384("bench-rsa"))

    def key(self, alg: str) -> ClientKey:
        if alg == "ES384":
            return self.es384
        if alg == "RS384":
            return self.rs384
        raise ValueError(f"unsupported algorithm {alg!r}: ES384 or RS384")

    def write_issuers_file(self, path: Path, fhir_servers: Sequence[str] = ()) -> Path:
        """The service's ``CDS_TRUSTED_ISSUERS`` file: this client with pinned keys, and the
        FHIR servers its requests may name (issue 11's allow-list)."""
        issuer: dict[str, Any] = {"iss": BENCH_ISSUER, "jwks": jwks(self.es384, self.rs384)}
        if fhir_servers:
            issuer["fhirServers"] = list(fhir_servers)
        document = {"issuers": [issuer]}
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path

    def tokens(self, alg: str, audience: str, count: int) -> list[str]:
        """``count`` fresh tokens for ``audience``, signed on every core."""
        key = self.key(alg)
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        workers = max(1, os.cpu_count() or 1)
        chunks = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = pool.map(
                _sign_many, [pem] * workers, [key.kid] * workers, [alg] * workers,
                [audience] * workers, chunks,
            )  # fmt: skip
            return [token for part in parts for token in part]


def _sign_many(pem: bytes, kid: str, alg: str, audience: str, count: int) -> list[str]:
    private = serialization.load_pem_private_key(pem, password=None)
    key = ClientKey(kid=kid, alg=alg, private=private)
    return [
        key.sign(claims(BENCH_ISSUER, audience, lifetime=TOKEN_LIFETIME_SECONDS))
        for _ in range(count)
    ]


def write_tokens(tokens: list[str], path: Path) -> Path:
    path.write_text("\n".join(tokens) + "\n", encoding="ascii")
    return path
