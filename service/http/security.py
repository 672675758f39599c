"""CDS Hooks 2.0 client authentication (JWT) and CORS.

Every request under ``/cds-services`` (discovery included) must carry
``Authorization: Bearer <JWT>`` signed by a trusted issuer:

* the issuers are an allow-list read from ``CDS_TRUSTED_ISSUERS`` (a JSON file);
  each names its ``iss`` and either the ``jku`` it publishes its keys at, a
  pinned ``jwks`` copy, or both (the pinned copy is then used, no fetching);
* ``alg`` is ES384 or RS384 (never ``none`` or HMAC), ``kid`` is required and a
  ``jku`` header, when present, must equal the issuer's allow-listed ``jku``;
* ``aud`` must equal ``CDS_PUBLIC_URL`` + the path being called; ``exp``,
  ``iat`` and ``jti`` are required; a ``jti`` is accepted once per issuer for
  the token's lifetime (the store is PostgreSQL, so this holds across processes).

A failure is a 401 with no detail; the reason is logged at INFO, never the token.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ec import SECP384R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import Flask, request
from flask_cors import CORS
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.audit.records import AuditUnavailable
from service.config import ConfigError, Settings
from service.http.errors import Problem, unauthorized
from service.http.trace import RequestTrace

log = logging.getLogger(__name__)

#: The only signature algorithms accepted (CDS Hooks 2.0 §Trusting CDS Clients).
ALLOWED_ALGORITHMS = ("ES384", "RS384")
#: Paths that need a client JWT (discovery, services, feedback).
PROTECTED_PREFIX = "/cds-services"
#: Paths a browser may call cross-origin.
CORS_PATHS = (r"/cds-services.*", r"/Questionnaire.*")
CORS_HEADERS = ("authorization", "content-type")
CORS_METHODS = ("GET", "POST", "OPTIONS")

MAX_TOKEN_CHARS = 16_384
MAX_CLAIM_CHARS = 512
MAX_JWKS_BYTES = 512_000
MIN_RSA_BITS = 2048
#: Fetched key sets are refreshed after this many seconds.
JWKS_CACHE_SECONDS = 600.0
#: At most one fetch per issuer in this window (an unknown ``kid`` cannot force more).
JWKS_MIN_REFRESH_SECONDS = 30.0

#: ``jti``: 1-512 printable characters (no control characters, which databases refuse).
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]{1,512}")

VerificationKey = EllipticCurvePublicKey | RSAPublicKey
JwksFetcher = Callable[[str, float], Any]


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """One public key an issuer signs with, by ``kid``."""

    kid: str
    key: VerificationKey
    #: the JWK's own ``alg``, when it names one
    alg: str | None = None

    def fits(self, alg: str) -> bool:
        if self.alg is not None and self.alg != alg:
            return False
        if alg == "ES384":
            return isinstance(self.key, EllipticCurvePublicKey) and isinstance(
                self.key.curve, SECP384R1
            )
        return isinstance(self.key, RSAPublicKey) and self.key.key_size >= MIN_RSA_BITS


@dataclass(frozen=True)
class TrustedIssuer:
    iss: str
    #: where the issuer publishes its JWKS; a token's ``jku`` header must equal it
    jku: str | None = None
    #: a pinned copy of the issuer's keys, used instead of fetching ``jku``
    pinned_keys: tuple[SigningKey, ...] | None = None
    #: tenant recorded in the audit when the token carries no ``tenant`` claim
    tenant: str | None = None


class JwkUnusable(ValueError):
    """A JWK that cannot verify ES384/RS384 signatures."""


def signing_key_from_jwk(jwk: Mapping[str, Any]) -> SigningKey:
    """A public verification key from one JWK (EC P-384 or RSA >= 2048 bits)."""
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
    try:
        if kty == "EC":
            loaded: Any = ECAlgorithm.from_jwk(dict(jwk))
        elif kty == "RSA":
            loaded = RSAAlgorithm.from_jwk(dict(jwk))
        else:
            raise JwkUnusable(f"'kty' {kty!r} is not EC or RSA")
    except jwt.InvalidKeyError as exc:
        raise JwkUnusable(f"is not a valid {kty} key ({exc})") from exc
    public = loaded.public_key() if hasattr(loaded, "public_key") else loaded
    key = SigningKey(kid=kid, key=public, alg=alg)
    if not any(key.fits(candidate) for candidate in ALLOWED_ALGORITHMS):
        raise JwkUnusable("is neither an EC P-384 key nor an RSA key of 2048+ bits")
    return key


def _http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


_ISSUER_FIELDS = {"iss", "jku", "jwks", "tenant"}


def _parse_pinned_jwks(value: Any, where: str) -> tuple[SigningKey, ...]:
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list):
        raise ConfigError(f'{where}: must be a JWK Set object {{"keys": [...]}}')
    keys: list[SigningKey] = []
    for index, jwk in enumerate(value["keys"]):
        if not isinstance(jwk, Mapping):
            raise ConfigError(f"{where}.keys[{index}]: must be a JWK object")
        if "d" in jwk:
            raise ConfigError(f"{where}.keys[{index}]: holds a private key; pin public keys only")
        try:
            keys.append(signing_key_from_jwk(jwk))
        except JwkUnusable as exc:
            raise ConfigError(f"{where}.keys[{index}]: {exc}") from exc
    if not keys:
        raise ConfigError(f"{where}.keys: is empty; pin at least one public key")
    return tuple(keys)


def _optional_text(entry: Mapping[str, Any], name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{name}: must be a non-empty string")
    return value


def parse_trusted_issuers(data: Any, source: str) -> dict[str, TrustedIssuer]:
    """The allow-list from the decoded JSON document; errors name ``source`` and the field."""
    if not isinstance(data, Mapping) or not isinstance(data.get("issuers"), list):
        raise ConfigError(f'{source}: must be a JSON object {{"issuers": [...]}}')
    issuers: dict[str, TrustedIssuer] = {}
    for index, entry in enumerate(data["issuers"]):
        where = f"{source}: issuers[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: must be an object")
        unknown = sorted(set(entry) - _ISSUER_FIELDS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown field(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(_ISSUER_FIELDS))}"
            )
        iss = _optional_text(entry, "iss", where)
        if iss is None:
            raise ConfigError(f"{where}.iss: is required")
        if iss in issuers:
            raise ConfigError(f"{where}.iss: {iss!r} is listed twice")
        jku = _optional_text(entry, "jku", where)
        if jku is not None and not _http_url(jku):
            raise ConfigError(f"{where}.jku: must be an absolute http(s) URL, got {jku!r}")
        pinned = _parse_pinned_jwks(entry["jwks"], f"{where}.jwks") if "jwks" in entry else None
        if jku is None and pinned is None:
            raise ConfigError(f"{where}: give 'jku' (a JWKS URL), 'jwks' (pinned keys), or both")
        tenant = _optional_text(entry, "tenant", where)
        issuers[iss] = TrustedIssuer(iss=iss, jku=jku, pinned_keys=pinned, tenant=tenant)
    return issuers


def load_trusted_issuers(path: Path) -> dict[str, TrustedIssuer]:
    """Read the ``CDS_TRUSTED_ISSUERS`` file."""
    source = f"CDS_TRUSTED_ISSUERS ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: is not valid JSON ({exc})") from exc
    return parse_trusted_issuers(data, source)


# -- keys -----------------------------------------------------------------------------------


class KeySourceError(Exception):
    """The issuer's JWKS could not be fetched or read."""


def fetch_jwks(url: str, timeout: float) -> Any:
    """GET a JWKS document (no redirects, size-capped); raises KeySourceError."""
    try:
        with requests.get(
            url,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise KeySourceError(f"{url} answered HTTP {response.status_code}")
            raw = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise KeySourceError(f"{url} unreachable ({type(exc).__name__})") from exc
    if len(raw) > MAX_JWKS_BYTES:
        raise KeySourceError(f"{url} sent more than {MAX_JWKS_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise KeySourceError(f"{url} did not send JSON") from exc


def usable_keys(document: Any, source: str) -> dict[str, SigningKey]:
    """The usable keys of a fetched JWKS by ``kid``; unusable keys are skipped."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeySourceError(f'{source} is not a JWK Set {{"keys": [...]}}')
    keys: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        try:
            key = signing_key_from_jwk(jwk)
        except JwkUnusable as exc:
            log.debug("skipping a key from %s: %s", source, exc)
            continue
        keys[key.kid] = key
    return keys


class _FetchedKeys:
    """One issuer's keys fetched from its ``jku``: cached, refreshed at a bounded rate."""

    def __init__(self, url: str, fetch: JwksFetcher, timeout: float, clock: Callable[[], float]):
        self._url = url
        self._fetch = fetch
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None

    def find(self, kid: str) -> SigningKey | None:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= JWKS_CACHE_SECONDS
            if (kid not in self._keys or stale) and self._may_fetch(now):
                self._refresh(now)
            return self._keys.get(kid)

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= JWKS_MIN_REFRESH_SECONDS

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            keys = usable_keys(self._fetch(self._url, self._timeout), self._url)
        except KeySourceError as exc:
            # Keep what we had: an issuer's key server outage must not lock out known keys.
            log.warning("JWKS refresh failed: %s", exc)
            return
        self._keys = keys
        self._fetched_at = now


class IssuerKeys:
    """Where to find an issuer's verification key for a ``kid``."""

    def __init__(
        self,
        issuer: TrustedIssuer,
        fetch: JwksFetcher,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self._pinned = (
            {key.kid: key for key in issuer.pinned_keys} if issuer.pinned_keys is not None else None
        )
        self._fetched = (
            _FetchedKeys(issuer.jku, fetch, timeout, clock)
            if self._pinned is None and issuer.jku is not None
            else None
        )

    def find(self, kid: str) -> SigningKey | None:
        if self._pinned is not None:
            return self._pinned.get(kid)
        return self._fetched.find(kid) if self._fetched is not None else None


# -- verification ---------------------------------------------------------------------------


class JtiStore(Protocol):
    """The replay store (``AuditTrail.remember_jti``)."""

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool: ...


class TokenRejected(Exception):
    """The token is not acceptable; the message is for the server log only."""


@dataclass(frozen=True)
class VerifiedClient:
    iss: str
    tenant: str | None
    jti: str
    expires_at: datetime


def _header(token: str) -> tuple[str, str, str | None]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"malformed JWT header ({type(exc).__name__})") from exc
    alg, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
    if alg not in ALLOWED_ALGORITHMS:
        raise TokenRejected(f"alg {str(alg)[:20]!r} is not allowed")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_CLAIM_CHARS:
        raise TokenRejected("kid missing")
    if jku is not None and not isinstance(jku, str):
        raise TokenRejected("jku is not a string")
    return alg, kid, jku


def _unverified_iss(token: str) -> str:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"malformed JWT payload ({type(exc).__name__})") from exc
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TokenRejected("iss missing")
    return iss


class TokenVerifier:
    """Checks a bearer JWT against the trusted issuers and the replay store."""

    def __init__(
        self,
        issuers: Mapping[str, TrustedIssuer],
        jti_store: JtiStore,
        *,
        leeway: int = 30,
        jwks_timeout: float = 3.0,
        fetch: JwksFetcher = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = dict(issuers)
        self._keys = {
            iss: IssuerKeys(issuer, fetch, jwks_timeout, clock) for iss, issuer in issuers.items()
        }
        self._jti_store = jti_store
        self._leeway = leeway

    def verify(self, token: str, audience: str) -> VerifiedClient:
        """The verified caller, or TokenRejected saying why (never containing the token)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected(f"token longer than {MAX_TOKEN_CHARS} characters")
        alg, kid, jku = _header(token)
        iss = _unverified_iss(token)
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise TokenRejected(f"iss {iss[:200]!r} is not a trusted issuer")
        if jku is not None and jku != issuer.jku:
            raise TokenRejected(f"jku {jku[:200]!r} is not the one allowed for {iss!r}")
        key = self._keys[iss].find(kid)
        if key is None:
            raise TokenRejected(f"no key {kid[:100]!r} for {iss!r}")
        if not key.fits(alg):
            raise TokenRejected(f"key {kid!r} of {iss!r} cannot verify {alg}")
        claims = self._decode(token, key, alg, iss, audience)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not _PRINTABLE.fullmatch(jti):
            raise TokenRejected("jti missing or not a short printable string")
        expires_at = datetime.fromtimestamp(int(claims["exp"]) + self._leeway, UTC)
        try:
            first_use = self._jti_store.remember_jti(iss, jti, expires_at)
        except ValueError as exc:  # the store refused the value itself
            raise TokenRejected(f"jti cannot be stored ({exc})") from exc
        if not first_use:
            raise TokenRejected(f"jti replayed for {iss!r}")
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            tenant = issuer.tenant
        return VerifiedClient(
            iss=iss,
            tenant=tenant[:MAX_CLAIM_CHARS] if tenant else None,
            jti=jti,
            expires_at=expires_at,
        )

    def _decode(
        self, token: str, key: SigningKey, alg: str, iss: str, audience: str
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=self._leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"{type(exc).__name__}: {exc}") from exc
        except (ValueError, OverflowError) as exc:
            raise TokenRejected(f"unreadable claims ({type(exc).__name__})") from exc
        return claims


# -- Flask wiring ---------------------------------------------------------------------------

_BEARER = re.compile(r"Bearer +([A-Za-z0-9_\-.=+/]+)\s*", re.IGNORECASE)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    match = _BEARER.fullmatch(authorization)
    return match.group(1) if match else None


def needs_authentication(method: str, path: str) -> bool:
    if method == "OPTIONS":  # CORS preflight: browsers never send credentials on it
        return False
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def _issuers_file(settings: Settings) -> Path:
    if settings.trusted_issuers_file is None:
        raise ConfigError(
            "CDS_TRUSTED_ISSUERS: required while CDS_AUTH is on; name the JSON file of "
            "trusted issuers (or set CDS_AUTH=off for a local run)"
        )
    return settings.trusted_issuers_file


def build_verifier(settings: Settings, jti_store: JtiStore) -> TokenVerifier:
    issuers = load_trusted_issuers(_issuers_file(settings))
    log.info("trusting %d CDS client issuer(s): %s", len(issuers), ", ".join(sorted(issuers)))
    return TokenVerifier(
        issuers, jti_store, leeway=settings.jwt_leeway, jwks_timeout=settings.jwks_timeout
    )


def _authenticate(verifier: TokenVerifier, public_url: str, trace: RequestTrace) -> None:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        log.info("401 %s %s: no bearer token", request.method, request.path)
        raise unauthorized()
    try:
        client = verifier.verify(token, public_url + request.path)
    except TokenRejected as exc:
        log.info("401 %s %s: %s", request.method, request.path, exc)
        raise unauthorized() from None
    except AuditUnavailable as exc:
        log.warning("replay store unavailable: %s", exc)
        raise Problem(503, "Authentication temporarily unavailable; retry later") from None
    trace.client_iss = client.iss
    trace.tenant = client.tenant


def cors_origins(origins: Iterable[str]) -> list[str]:
    """Validated exact origins (``scheme://host[:port]``); a wildcard is refused."""
    checked: list[str] = []
    for origin in origins:
        parts = urlsplit(origin)
        exact = parts.scheme in {"http", "https"} and parts.netloc and not parts.path.strip("/")
        if origin == "*" or not exact or re.search(r"[*\\\]\[?$^()]", origin):
            raise ConfigError(
                f"CORS_ORIGINS: {origin!r} is not an exact origin like https://portal.example.org "
                "(wildcards are not allowed)"
            )
        checked.append(f"{parts.scheme}://{parts.netloc}")
    return checked


def install_cors(app: Flask, origins: Iterable[str]) -> None:
    allowed = cors_origins(origins)
    if not allowed:
        return
    options = {
        "origins": allowed,
        "allow_headers": list(CORS_HEADERS),
        "methods": list(CORS_METHODS),
        "expose_headers": ["X-Request-ID"],
        "supports_credentials": False,
        "send_wildcard": False,
        "vary_header": True,
        "max_age": 600,
    }
    CORS(app, resources={path: options for path in CORS_PATHS})


def check_settings(settings: Settings) -> None:
    """Fail fast (ConfigError naming the variable/file/field) before a server starts."""
    cors_origins(settings.cors_origins)
    if settings.auth_enabled:
        load_trusted_issuers(_issuers_file(settings))


def authentication_gate(
    settings: Settings, jti_store: JtiStore
) -> Callable[[RequestTrace], None] | None:
    """The request gate checking client JWTs on /cds-services (None while CDS_AUTH is off)."""
    if not settings.auth_enabled:
        return None
    verifier = build_verifier(settings, jti_store)

    def require_client_jwt(trace: RequestTrace) -> None:
        if needs_authentication(trace.method, trace.path):
            _authenticate(verifier, settings.public_url, trace)

    return require_client_jwt
