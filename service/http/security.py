"""CDS Hooks 2.0 client authentication and CORS: the Flask wiring.

Every request under ``/cds-services`` (discovery included) must carry
``Authorization: Bearer <JWT>`` from a trusted issuer; the checks themselves are
in ``service.auth`` (issuers, keys, verifier). A failure is a 401 with no
detail; the reason is logged at INFO, never the token.

Replay protection: a ``jti`` seen before by this pod is refused here (the pod ledger).
A hook call's claim is then settled in PostgreSQL together with its audit record when
the response is final (``lifecycle.RequestEnd``; one round trip, one commit), and a
replay found there is answered 401 instead of the cards; a hook call that must contact
the client's fhirServer settles it first (``SettledBeforeFetch``). Every other call
(discovery, feedback) settles it here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request
from flask_cors import CORS

from service.audit.records import AuditUnavailable, DeferredReplayStore, JtiClaim
from service.auth.fhir_servers import FhirServerPolicy
from service.auth.issuers import TrustedIssuer, load_trusted_issuers, publicly_keyed
from service.auth.verifier import ReplayStore, TokenRejected, TokenVerifier, VerifiedClient
from service.cds.locate import FhirSource
from service.config import ConfigError, Settings
from service.http.errors import Problem, unauthorized
from service.http.trace import RequestTrace, current_or_none

log = logging.getLogger(__name__)

#: Paths that need a client JWT (discovery, services, feedback).
PROTECTED_PREFIX = "/cds-services"
#: The route of a hook call (``http/cds.py``): its jti is settled with its audit record.
HOOK_ENDPOINT = "/cds-services/<service_id>"
REPLAY_UNAVAILABLE = "Authentication temporarily unavailable; retry later"
#: Paths a browser may call cross-origin.
CORS_PATHS = (r"/cds-services.*", r"/Questionnaire.*")
CORS_HEADERS = ("authorization", "content-type")
CORS_METHODS = ("GET", "POST", "OPTIONS")


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


def trusted_issuers(settings: Settings) -> dict[str, TrustedIssuer] | None:
    """The ``CDS_TRUSTED_ISSUERS`` allow-list, read once (None while CDS_AUTH is off)."""
    return load_trusted_issuers(_issuers_file(settings)) if settings.auth_enabled else None


def build_verifier(
    settings: Settings,
    replay_store: ReplayStore,
    issuers: Mapping[str, TrustedIssuer] | None = None,
) -> TokenVerifier:
    """``issuers``: the allow-list already read (by ``trusted_issuers``), else read now."""
    if issuers is None:
        issuers = load_trusted_issuers(_issuers_file(settings))
    log.info("trusting %d CDS client issuer(s): %s", len(issuers), ", ".join(sorted(issuers)))
    for iss, why in publicly_keyed(issuers).items():
        log.warning(
            "trusting %s, whose private key is public (%s): anyone can mint tokens this "
            "service accepts. Development only; never in production.",
            iss,
            why,
        )
    return TokenVerifier(
        issuers,
        replay_store,
        leeway=settings.jwt_leeway,
        max_lifetime=settings.jwt_max_lifetime,
        jwks_timeout=settings.jwks_timeout,
    )


def settle(store: DeferredReplayStore, claim: JtiClaim) -> None:
    """Settle a ``jti`` claim on its own; TokenRejected on a replay or a refused value."""
    try:
        first_use = store.settle_jti(claim)
    except ValueError as exc:  # the store refused the value itself
        raise TokenRejected(f"jti cannot be stored ({exc})") from exc
    if not first_use:
        raise TokenRejected(f"jti replayed for {claim.iss!r}")


def defers_replay_check(trace: RequestTrace) -> bool:
    """A hook call: its ``jti`` is settled with its audit record, at the end."""
    return trace.method == "POST" and trace.endpoint == HOOK_ENDPOINT


def _check_replay(
    verifier: TokenVerifier,
    deferred: DeferredReplayStore | None,
    client: VerifiedClient,
    trace: RequestTrace,
) -> None:
    """A replay within this pod is refused here (its ledger); across pods, a hook call's
    claim is settled by its audit write (``lifecycle.RequestEnd``), every other call's now."""
    if deferred is None or not defers_replay_check(trace):
        verifier.remember(client)
        return
    claim = deferred.claim_jti(client.iss, client.jti, client.expires_at)
    if claim is None:
        raise TokenRejected(f"jti replayed for {client.iss!r}")
    if claim.ask_database:
        trace.jti_claim = claim
    else:  # PostgreSQL is known to be down: pending in the ledger now (or fail-closed)
        settle(deferred, claim)


def _authenticate(
    verifier: TokenVerifier,
    deferred: DeferredReplayStore | None,
    public_url: str,
    trace: RequestTrace,
) -> None:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        log.info("401 %s %s: no bearer token", request.method, request.path)
        raise unauthorized()
    try:
        client = verifier.check(token, public_url + request.path)
        _check_replay(verifier, deferred, client, trace)
    except TokenRejected as exc:
        log.info("401 %s %s: %s", request.method, request.path, exc)
        raise unauthorized() from None
    except AuditUnavailable as exc:
        log.warning("replay store unavailable: %s", exc)
        raise Problem(503, REPLAY_UNAVAILABLE) from None
    trace.client_iss = client.iss
    trace.tenant = client.tenant


class SettledBeforeFetch:
    """A ``FhirSource`` that settles the call's deferred ``jti`` claim before contacting
    the client's fhirServer: a replayed token never makes the service call out."""

    def __init__(self, inner: FhirSource, store: DeferredReplayStore) -> None:
        self._inner = inner
        self._store = store

    def _settle(self) -> None:
        trace = current_or_none()
        claim = trace.jti_claim if trace is not None else None
        if trace is None or claim is None:
            return
        trace.jti_claim = None
        try:
            settle(self._store, claim)
        except TokenRejected as exc:
            log.info("401 %s %s: %s (before calling fhirServer)", trace.method, trace.path, exc)
            trace.unauthenticate(unauthorized())
            raise unauthorized() from None
        except AuditUnavailable as exc:
            log.warning("replay store unavailable: %s", exc)
            problem = Problem(503, REPLAY_UNAVAILABLE)
            trace.unauthenticate(problem)
            raise problem from None

    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]:
        self._settle()
        return self._inner.search(base, query, token)

    def questionnaire(self, base: str, canonical: str, token: str | None) -> dict[str, Any] | None:
        self._settle()
        return self._inner.questionnaire(base, canonical, token)


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


def _log_refused_preflights(app: Flask, allowed: Iterable[str]) -> None:
    """A preflight from an origin not allowed gets no CORS headers; say so in the log."""
    accepted = frozenset(origin.lower() for origin in allowed)
    paths = tuple(re.compile(path) for path in CORS_PATHS)

    @app.before_request
    def _log_refused_origin() -> None:
        origin = request.headers.get("Origin")
        if (
            request.method == "OPTIONS"
            and origin
            and "Access-Control-Request-Method" in request.headers
            and origin.lower() not in accepted
            and any(path.match(request.path) for path in paths)
        ):
            log.info("CORS origin refused: %s", origin[:200])


def install_cors(app: Flask, origins: Iterable[str]) -> None:
    allowed = cors_origins(origins)
    _log_refused_preflights(app, allowed)
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


def fhir_server_policy(
    settings: Settings, issuers: Mapping[str, TrustedIssuer] | None = None
) -> FhirServerPolicy:
    """Which fhirServer may be called for whom: the issuers' ``fhirServers`` with auth on,
    ``FHIR_SERVERS_ALLOWED`` (default: loopback) with auth off. ``issuers``: the
    allow-list already read, else it is read now."""
    if settings.auth_enabled:
        if issuers is None:
            issuers = load_trusted_issuers(_issuers_file(settings))
        return FhirServerPolicy.for_issuers(issuers)
    try:
        return FhirServerPolicy.without_auth(settings.fhir_servers_allowed)
    except ValueError as exc:
        raise ConfigError(f"FHIR_SERVERS_ALLOWED: {exc}") from None


def check_settings(settings: Settings) -> None:
    """Fail fast (ConfigError naming the variable/file/field) before a server starts."""
    cors_origins(settings.cors_origins)
    fhir_server_policy(settings)  # with auth on, this reads and checks the issuers file


def authentication_gate(
    settings: Settings,
    replay_store: ReplayStore | None,
    deferred: DeferredReplayStore | None = None,
    issuers: Mapping[str, TrustedIssuer] | None = None,
) -> Callable[[RequestTrace], None] | None:
    """The request gate checking client JWTs on /cds-services (None while CDS_AUTH is off).

    ``deferred``: the replay store whose hook-call checks the audit write settles (the
    request's end must then be given the audit trail that does it).
    """
    if not settings.auth_enabled:
        return None
    if replay_store is None:
        raise ConfigError("CDS_AUTH is on: client authentication needs a jti replay store")
    verifier = build_verifier(settings, replay_store, issuers)

    def require_client_jwt(trace: RequestTrace) -> None:
        if needs_authentication(trace.method, trace.path):
            _authenticate(verifier, deferred, settings.public_url, trace)

    return require_client_jwt
