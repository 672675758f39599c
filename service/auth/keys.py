"""An issuer's verification keys, on PyJWT's own classes.

* pinned keys (``jwks`` in the issuers file) are a ``jwt.PyJWKSet``;
* keys published at a ``jku`` come from a ``jwt.PyJWKClient`` (its JWK Set cache
  with a lifespan, its ``kid`` lookup and forced refresh).

What PyJWT lacks is added here and only here: the key-strength rule (EC P-384
for ES384, RSA of 2048+ bits for RS384), public keys only in a pinned set, a
size cap on the JWKS fetch, the last good keys kept when a refresh fails, and
a bounded refresh rate (an unknown ``kid`` cannot make us hammer the issuer,
even while its key server is failing).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP384R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from service.config import ConfigError
from service.outbound import BoundedGet, OutboundError

log = logging.getLogger(__name__)

#: The only signature algorithms accepted (CDS Hooks 2.0 §Trusting CDS Clients).
ALLOWED_ALGORITHMS = ("ES384", "RS384")
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 512_000
#: Fetched key sets are refreshed after this many seconds (PyJWKClient's lifespan).
JWKS_CACHE_SECONDS = 600.0
#: At most one fetch per issuer in this window (an unknown ``kid`` cannot force more).
JWKS_MIN_REFRESH_SECONDS = 30.0

#: The public members of a JWK passed on to PyJWT (private members are never kept).
_PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e")}
#: The one algorithm each key type may verify here.
_ALGORITHM_OF = {"EC": "ES384", "RSA": "RS384"}
_TOO_WEAK = "is neither an EC P-384 key nor an RSA key of 2048+ bits"

#: ``fetch(url, timeout) -> decoded JSON``; raises KeySourceError.
JwksFetcher = Callable[[str, float], Any]


class JwkUnusable(ValueError):
    """A JWK that cannot verify ES384/RS384 signatures."""


class KeySourceError(Exception):
    """The issuer's JWKS could not be fetched or read."""


def _strong_enough(key: Any, alg: str) -> bool:
    if alg == "ES384":
        return isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP384R1)
    return isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS


def public_signing_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public part of a usable JWK, its ``alg`` set to the one algorithm it may verify.

    Raises JwkUnusable saying why (no ``kid``, wrong ``use``/``alg``/``kty``, an
    invalid or too weak key). ``jwt.PyJWK(result)`` is then bound to that algorithm.
    """
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwkUnusable("has no 'kid'")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise JwkUnusable(f"'use' is {use!r}, not 'sig'")
    alg = jwk.get("alg")
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        raise JwkUnusable(f"'alg' {alg!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _PUBLIC_MEMBERS:
        raise JwkUnusable(f"'kty' {kty!r} is not EC or RSA")
    expected = _ALGORITHM_OF[kty]
    if alg is not None and alg != expected:
        raise JwkUnusable(_TOO_WEAK)
    public = {name: jwk[name] for name in _PUBLIC_MEMBERS[kty] if name in jwk}
    public.update(kid=kid, use="sig", alg=expected)
    try:
        key = jwt.PyJWK(public)
    except jwt.PyJWTError as exc:
        raise JwkUnusable(f"is not a valid {kty} key ({exc})") from exc
    if not _strong_enough(key.key, expected):
        raise JwkUnusable(_TOO_WEAK)
    return public


def pinned_key_set(value: Any, where: str) -> jwt.PyJWKSet:
    """A pinned ``{"keys": [...]}`` from the issuers file; ConfigError names ``where``."""
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list):
        raise ConfigError(f'{where}: must be a JWK Set object {{"keys": [...]}}')
    keys: list[dict[str, Any]] = []
    for index, jwk in enumerate(value["keys"]):
        if not isinstance(jwk, Mapping):
            raise ConfigError(f"{where}.keys[{index}]: must be a JWK object")
        if "d" in jwk:
            raise ConfigError(f"{where}.keys[{index}]: holds a private key; pin public keys only")
        try:
            keys.append(public_signing_jwk(jwk))
        except JwkUnusable as exc:
            raise ConfigError(f"{where}.keys[{index}]: {exc}") from exc
    if not keys:
        raise ConfigError(f"{where}.keys: is empty; pin at least one public key")
    return jwt.PyJWKSet(keys)


def usable_jwks(document: Any, source: str) -> list[dict[str, Any]]:
    """The usable public keys of a fetched JWKS; unusable keys are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeySourceError(f'{source} is not a JWK Set {{"keys": [...]}}')
    keys: list[dict[str, Any]] = []
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        try:
            keys.append(public_signing_jwk(jwk))
        except JwkUnusable as exc:
            log.debug("skipping a key from %s: %s", source, exc)
    return keys


def fetch_jwks(url: str, timeout: float) -> Any:
    """GET a JWKS document within ``timeout`` seconds in all, at most MAX_JWKS_BYTES long,
    no redirects; raises KeySourceError."""
    fetch = BoundedGet(deadline=timeout, max_bytes=MAX_JWKS_BYTES)
    try:
        raw = fetch(url, {"Accept": "application/json"})
    except OutboundError as exc:
        raise KeySourceError(f"{url} {exc}") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise KeySourceError(f"{url} did not send JSON") from None


class _RefreshRefused(jwt.PyJWKClientConnectionError):
    """A fetch skipped: the last attempt was too recent."""


class IssuerJwksClient(jwt.PyJWKClient):
    """PyJWKClient for one issuer's ``jku``, with what it lacks.

    PyJWKClient keeps the JWK Set for ``lifespan`` seconds and refetches once
    when a ``kid`` is unknown. Added: the fetch goes through ``fetch`` (capped
    size, bounded time); an attempt is made at most once per ``min_refresh``
    seconds of ``clock``, failed attempts included; when a refresh fails the
    last good keys are used; only usable public keys are kept.
    """

    def __init__(
        self,
        uri: str,
        *,
        fetch: JwksFetcher,
        timeout: float,
        lifespan: float = JWKS_CACHE_SECONDS,
        min_refresh: float = JWKS_MIN_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # cooldown 0: every forced refresh reaches fetch_data, which applies the bound.
        super().__init__(uri, lifespan=lifespan, timeout=timeout, cooldown_duration=0)
        self._fetch = fetch
        self._min_refresh = min_refresh
        self._clock = clock
        self._attempted_at: float | None = None
        self._last_good: jwt.PyJWKSet | None = None

    def fetch_data(self) -> Any:
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
            raise _RefreshRefused(f"{self.uri} was tried less than {self._min_refresh}s ago")
        self._attempted_at = now
        try:
            keys = usable_jwks(self._fetch(self.uri, self.timeout), self.uri)
        except KeySourceError as exc:
            raise jwt.PyJWKClientConnectionError(str(exc)) from exc
        return {"keys": keys}

    def get_jwk_set(self, refresh: bool = False) -> jwt.PyJWKSet:
        try:
            jwk_set = super().get_jwk_set(refresh)
        except jwt.PyJWKSetError:
            # A JWK Set with no usable key: the issuer has none for us now.
            self._last_good = None
            if self.jwk_set_cache is not None:
                self.jwk_set_cache.put(None)
            raise
        except jwt.PyJWKClientConnectionError as exc:
            if not isinstance(exc, _RefreshRefused):
                log.warning("JWKS refresh failed: %s", exc)
            if self._last_good is None:
                raise
            # Keep what we had: an issuer's key server outage must not lock out known keys.
            return self._last_good
        self._last_good = jwk_set
        return jwk_set

    def find(self, kid: str) -> jwt.PyJWK | None:
        try:
            return self.get_signing_key(kid)
        except jwt.PyJWTError:
            return None


class IssuerKeys:
    """Where to find an issuer's verification key for a ``kid``: pinned, else its ``jku``."""

    def __init__(self, pinned: jwt.PyJWKSet | None, client: IssuerJwksClient | None) -> None:
        self._pinned = pinned
        self._client = client if pinned is None else None

    def find(self, kid: str) -> jwt.PyJWK | None:
        if self._pinned is not None:
            try:
                return self._pinned[kid]
            except KeyError:
                return None
        return self._client.find(kid) if self._client is not None else None
