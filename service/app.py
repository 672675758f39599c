"""The one wiring point: ``create_app(settings)``. Nothing runs at import.

See docs/architecture.md for the flow of a request and the packages it crosses.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, cast

from flask import Flask

from service.audit.records import (
    AuditTrail,
    ClaimingAuditTrail,
    DeferredReplayStore,
    ReplayStore,
)
from service.cds.feedback import FeedbackDesk
from service.cds.hook import HookHandler
from service.cds.locate import FhirSource
from service.cds.screen import Screener
from service.config import Settings
from service.fhir.client import FhirClient
from service.http import cds, lifecycle, public, security
from service.http.errors import register_error_handlers
from service.http.metrics import METRICS_PATH, MetricsEndpoint
from service.http.runtime import EXTENSION_KEY, Runtime
from service.knowledge import Knowledge
from service.portal import install as install_portal

log = logging.getLogger("service")


def utc_now() -> datetime:
    return datetime.now(UTC)


def load_knowledge(settings: Settings) -> Knowledge:
    """Rules, terminology and questionnaires, validated (raises naming file + field)."""
    return Knowledge.load(settings.rules_dir, settings.questionnaires_dir, settings.terminology_dir)


class SettlingTrail(ClaimingAuditTrail, Protocol):
    """An audit trail that settles the jti claims of its own replay store."""

    @property
    def replay(self) -> DeferredReplayStore: ...


def settling_trail(
    settings: Settings, audit: AuditTrail, replay: ReplayStore | None
) -> SettlingTrail | None:
    """The trail that settles each hook call's ``jti`` with its audit record (one
    statement), when authentication is on and ``replay`` is that trail's own store."""
    if not settings.auth_enabled or not isinstance(audit, ClaimingAuditTrail):
        return None
    own = getattr(audit, "replay", None)
    if own is None or own is not replay or not isinstance(own, DeferredReplayStore):
        return None
    return cast(SettlingTrail, audit)


def create_app(
    settings: Settings | None = None,
    *,
    audit: AuditTrail | None = None,
    replay: ReplayStore | None = None,
    knowledge: Knowledge | None = None,
    fhir: FhirSource | None = None,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> Flask:
    """The Flask app.

    ``audit`` defaults to the trail ``settings`` name, and ``replay`` (the ``jti`` store
    of client authentication) to that trail's; the caller closes the trail
    (``app.extensions["backpain_cds"].audit.close()``). A caller giving its own ``audit``
    with ``CDS_AUTH`` on gives a ``replay`` store too.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    endpoint = MetricsEndpoint(settings.prometheus_multiproc_dir)
    if audit is None:
        from service.audit.factory import create_audit_trail

        trail = create_audit_trail(settings, hooks=endpoint.metrics.audit_hooks())
        audit, replay = trail, replay or trail.replay
    endpoint.bind(audit)
    screener = Screener(
        knowledge or load_knowledge(settings),
        max_items=settings.max_qr_items,
        public_url=settings.public_url,
    )
    if fhir is None:
        fhir = FhirClient(timeout=settings.fhir_timeout, max_bytes=settings.fhir_max_response_bytes)
    claims = settling_trail(settings, audit, replay)
    if claims is not None:
        fhir = security.SettledBeforeFetch(fhir, claims.replay)
    issuers = security.trusted_issuers(settings)  # read once: the gate and the guard use it
    handler = HookHandler(screener, fhir, security.fhir_server_policy(settings, issuers))
    feedback = FeedbackDesk(audit, clock=clock, new_id=new_id)
    app.extensions[EXTENSION_KEY] = Runtime(settings, handler, feedback, audit)

    if not settings.auth_enabled:
        log.warning(
            "CDS_AUTH=off: client JWTs are NOT verified. Local use only; never in production."
        )
    register_error_handlers(app)
    gate = security.authentication_gate(
        settings, replay, claims.replay if claims is not None else None, issuers
    )
    lifecycle.install(
        app,
        audit=audit,
        metrics=endpoint.metrics,
        services=handler.services,
        clock=clock,
        new_id=new_id,
        gates=[gate] if gate is not None else [],
        claims=claims,
    )
    security.install_cors(app, settings.cors_origins)
    app.register_blueprint(cds.bp)
    app.register_blueprint(public.bp)
    if settings.portal_enabled:
        install_portal(app, settings, handler)
    app.add_url_rule(METRICS_PATH, "metrics", endpoint.view, methods=["GET"])
    return app
