"""The one wiring point: ``create_app(settings)``. Nothing runs at import.

See docs/architecture.md for the flow of a request and the packages it crosses.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask

from service.audit.records import AuditTrail, ReplayStore
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
    handler = HookHandler(screener, fhir, security.fhir_server_policy(settings))
    feedback = FeedbackDesk(audit, clock=clock, new_id=new_id)
    app.extensions[EXTENSION_KEY] = Runtime(settings, handler, feedback, audit)

    if not settings.auth_enabled:
        log.warning(
            "CDS_AUTH=off: client JWTs are NOT verified. Local use only; never in production."
        )
    register_error_handlers(app)
    gate = security.authentication_gate(settings, replay)
    lifecycle.install(
        app,
        audit=audit,
        metrics=endpoint.metrics,
        services=handler.services,
        clock=clock,
        new_id=new_id,
        gates=[gate] if gate is not None else [],
    )
    security.install_cors(app, settings.cors_origins)
    app.register_blueprint(cds.bp)
    app.register_blueprint(public.bp)
    if settings.portal_enabled:
        install_portal(app, settings, handler)
    app.add_url_rule(METRICS_PATH, "metrics", endpoint.view, methods=["GET"])
    return app
