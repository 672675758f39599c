"""CDS Hooks 2.0 client JWT verification (no Flask, no database: a replay store is passed in).

* the issuer must be on the allow-list (``TrustedIssuer``);
* ``alg`` is ES384 or RS384 (never ``none`` or HMAC), ``kid`` is required and a
  ``jku`` header, when present, must equal the issuer's allow-listed ``jku``;
* ``aud`` must equal the URL called; ``exp``, ``iat`` and ``jti`` are required;
  ``exp``, ``iat`` and ``nbf`` are integers (CDS Hooks 2.0 says so) and
  ``exp - iat`` is at most the maximum lifetime plus the leeway;
* a ``jti`` is accepted once per issuer for the token's lifetime.

A refusal is ``TokenRejected`` whose message is for the server log: it never
contains the token.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt

from service.auth.issuers import TrustedIssuer
from service.auth.keys import (
    ALLOWED_ALGORITHMS,
    JWKS_CACHE_SECONDS,
    IssuerJwksClient,
    IssuerKeys,
    JwksFetcher,
    fetch_jwks,
)

MAX_TOKEN_CHARS = 16_384
MAX_CLAIM_CHARS = 512
#: The sandbox and the EHRs we know issue tokens for 5 minutes.
DEFAULT_MAX_LIFETIME_SECONDS = 300
_TIME_CLAIMS = ("exp", "iat", "nbf")

#: ``jti``: 1-512 printable characters (no control characters, which databases refuse).
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,512}")


class ReplayStore(Protocol):
    """Remembers each ``jti`` per issuer until it expires (``AuditTrail.remember_jti``).

    Returns False when the pair was seen before. May raise ValueError when it
    cannot store the value itself; other errors (an outage) propagate.
    """

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool: ...


class TokenRejected(Exception):
    """The token is not acceptable; the message is for the server log only."""


@dataclass(frozen=True)
class VerifiedClient:
    iss: str
    tenant: str | None
    jti: str
    expires_at: datetime


_UNVERIFIED = jwt.PyJWS()


def _unverified(token: str) -> tuple[str, str, str | None, dict[str, Any]]:
    """The header's alg, kid and jku, and the claims as sent: one read of the token
    (PyJWS, without the signature), to find the issuer and its key and to explain a
    refusal. The signature and the claims are checked afterwards by ``jwt.decode``."""
    try:
        parts = _UNVERIFIED.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"malformed JWT ({type(exc).__name__})") from exc
    header = parts["header"]
    alg, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenRejected(f"alg {str(alg)[:20]!r} is not allowed")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_CLAIM_CHARS:
        raise TokenRejected("kid missing")
    if jku is not None and not isinstance(jku, str):
        raise TokenRejected("jku is not a string")
    try:
        claims = json.loads(parts["payload"])
    except (ValueError, RecursionError) as exc:
        raise TokenRejected(f"malformed JWT payload ({type(exc).__name__})") from exc
    if not isinstance(claims, dict):
        raise TokenRejected("malformed JWT payload (not a JSON object)")
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TokenRejected("iss missing")
    return alg, kid, jku, claims


def _shown(value: Any, limit: int = 200) -> str:
    """A claim value for the log: repr (control characters escaped), truncated."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class TokenVerifier:
    """Checks a bearer JWT against the trusted issuers and the replay store."""

    def __init__(
        self,
        issuers: Mapping[str, TrustedIssuer],
        replay_store: ReplayStore,
        *,
        leeway: int = 30,
        max_lifetime: int = DEFAULT_MAX_LIFETIME_SECONDS,
        jwks_timeout: float = 3.0,
        jwks_lifespan: float = JWKS_CACHE_SECONDS,
        fetch: JwksFetcher = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = dict(issuers)
        self._keys = {
            iss: IssuerKeys(
                issuer.pinned_keys,
                IssuerJwksClient(
                    issuer.jku,
                    fetch=fetch,
                    timeout=jwks_timeout,
                    lifespan=jwks_lifespan,
                    clock=clock,
                )
                if issuer.jku is not None and issuer.pinned_keys is None
                else None,
            )
            for iss, issuer in issuers.items()
        }
        self._replay_store = replay_store
        self._leeway = leeway
        self._max_lifetime = max_lifetime

    def verify(self, token: str, audience: str) -> VerifiedClient:
        """The verified caller, or TokenRejected saying why (never containing the token)."""
        client = self.check(token, audience)
        self.remember(client)
        return client

    def remember(self, client: VerifiedClient) -> None:
        """Accept the client's ``jti`` once (the replay store); TokenRejected on a replay."""
        try:
            first_use = self._replay_store.remember_jti(client.iss, client.jti, client.expires_at)
        except ValueError as exc:  # the store refused the value itself
            raise TokenRejected(f"jti cannot be stored ({exc})") from exc
        if not first_use:
            raise TokenRejected(f"jti replayed for {client.iss!r}")

    def check(self, token: str, audience: str) -> VerifiedClient:
        """Every check but the replay one (the caller settles the ``jti`` itself)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected(f"token longer than {MAX_TOKEN_CHARS} characters")
        alg, kid, jku, unverified = _unverified(token)
        iss: str = unverified["iss"]
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise TokenRejected(f"iss {iss[:200]!r} is not a trusted issuer")
        if jku is not None and jku != issuer.jku:
            raise TokenRejected(f"jku {jku[:200]!r} is not the one allowed for {iss!r}")
        key = self._keys[iss].find(kid)
        if key is None:
            raise TokenRejected(f"no key {kid[:100]!r} for {iss!r}")
        if key.algorithm_name != alg:
            raise TokenRejected(f"key {kid!r} of {iss!r} cannot verify {alg}")
        try:
            claims = self._decode(token, key, alg, iss, audience)
        except jwt.InvalidAudienceError:
            got = _shown(unverified.get("aud"))
            raise TokenRejected(f"aud mismatch: expected {audience}, got {got}") from None
        jti = claims.get("jti")
        if not isinstance(jti, str) or not _PRINTABLE.fullmatch(jti):
            raise TokenRejected("jti missing or not a short printable string")
        expires_at = self._expiry(claims)
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            tenant = issuer.tenant
        return VerifiedClient(
            iss=iss,
            tenant=tenant[:MAX_CLAIM_CHARS] if tenant else None,
            jti=jti,
            expires_at=expires_at,
        )

    def _expiry(self, claims: Mapping[str, Any]) -> datetime:
        """When the ``jti`` may be forgotten; refuses odd numbers and overlong lifetimes."""
        for name in _TIME_CLAIMS:
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int)):
                raise TokenRejected(f"{name} is not an integer NumericDate")
        exp: int = claims["exp"]
        lifetime = exp - claims["iat"]
        if lifetime > self._max_lifetime + self._leeway:
            raise TokenRejected(
                f"lifetime of {str(lifetime)[:24]}s exceeds {self._max_lifetime}s "
                f"(+{self._leeway}s leeway)"
            )
        try:
            return datetime.fromtimestamp(exp + self._leeway, UTC)
        except (OverflowError, ValueError, OSError) as exc:
            raise TokenRejected(f"exp out of range ({type(exc).__name__})") from exc

    def _decode(
        self, token: str, key: jwt.PyJWK, alg: str, iss: str, audience: str
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=self._leeway,
                options={
                    "require": ["iss", "aud", "exp", "iat", "jti"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidAudienceError:
            raise
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"{type(exc).__name__}: {exc}") from exc
        except (ValueError, OverflowError) as exc:
            raise TokenRejected(f"unreadable claims ({type(exc).__name__})") from exc
        return claims
