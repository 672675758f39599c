"""Small fakes for the authentication unit tests: replay store, key server, clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.auth.issuers import parse_trusted_issuers
from service.auth.keys import JWKS_CACHE_SECONDS, KeySourceError
from service.auth.verifier import TokenVerifier
from testkit.signing import ClientKey, jwks

EHR = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
AUD = "https://cds.example.org/cds-services/backpain-redflags-patient-view"

EC_KEY = ClientKey.es384("ec-1")
RSA_KEY = ClientKey.rs384("rsa-1")

P256_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "kid": "p256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}


class FakeReplayStore:
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
    """The clock of the refresh limiter (PyJWKClient's own cache runs on real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(
    config: dict[str, Any] | None = None,
    keys: FakeKeyServer | None = None,
    clock: FakeClock | None = None,
    *,
    lifespan: float = JWKS_CACHE_SECONDS,
    **options: Any,
) -> tuple[TokenVerifier, FakeReplayStore]:
    config = config or {"issuers": [{"iss": EHR, "jku": JKU, "tenant": "clinic-a"}]}
    store = FakeReplayStore()
    built = TokenVerifier(
        parse_trusted_issuers(config, "test"),
        store,
        leeway=30,
        fetch=keys or FakeKeyServer({JKU: jwks(EC_KEY, RSA_KEY)}),
        clock=clock or FakeClock(),
        jwks_lifespan=lifespan,
        **options,
    )
    return built, store
