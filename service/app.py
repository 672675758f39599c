"""The one wiring point: ``create_app(settings)``. Nothing runs at import."""

from __future__ import annotations

import atexit
import logging

from flask import Flask

from service import observability
from service.audit.records import AuditTrail
from service.config import Settings
from service.fhir_client import FhirClient
from service.hooks import FhirSource, HookHandler
from service.http import auditing, cds, public, security
from service.http.errors import register_error_handlers
from service.http.runtime import EXTENSION_KEY, Runtime
from service.screening import Knowledge

log = logging.getLogger("service")


def load_knowledge(settings: Settings) -> Knowledge:
    """Rules, terminology and questionnaires, validated (raises naming file + field)."""
    return Knowledge.load(settings.rules_dir, settings.questionnaires_dir, settings.terminology_dir)


def create_app(
    settings: Settings | None = None,
    *,
    audit: AuditTrail | None = None,
    knowledge: Knowledge | None = None,
    fhir: FhirSource | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    if audit is None:
        from service.audit.factory import create_audit_trail

        audit = create_audit_trail(settings)
        # A final replay of the spool, and its files released, when the worker exits.
        atexit.register(audit.close)
    handler = HookHandler(
        knowledge or load_knowledge(settings),
        fhir or FhirClient(timeout=settings.fhir_timeout),
        max_items=settings.max_qr_items,
    )
    app.extensions[EXTENSION_KEY] = Runtime(settings=settings, handler=handler, audit=audit)

    if not settings.auth_enabled:
        log.warning(
            "CDS_AUTH=off: client JWTs are NOT verified. Local use only; never in production."
        )
    register_error_handlers(app)
    # Order matters: request id and clock first, then the audit's invocation id,
    # then authentication (so a 401 is logged and audited with both).
    observability.install(app, settings, audit)
    auditing.install(app)
    security.install(app, settings, audit)
    app.register_blueprint(cds.bp)
    app.register_blueprint(public.bp)
    return app
