"""CDS Hooks 2.0 endpoints: discovery, service calls, feedback. Translation only: HTTP in,
a use case called, its result or refusal out as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Response, jsonify, request

from service.audit.records import AuditUnavailable, FeedbackRefused
from service.cds.catalogue import CdsService
from service.cds.errors import (
    BadRequest,
    DataUnavailable,
    QuestionnaireResponseInvalid,
    UnknownCards,
)
from service.http import trace as tracing
from service.http.body import read_json_object
from service.http.errors import Problem
from service.http.runtime import runtime
from service.http.schemas import FeedbackSchema, HookRequestSchema, load_or_400

bp = Blueprint("cds", __name__)

_hook_request_schema = HookRequestSchema()
_feedback_schema = FeedbackSchema()


@contextmanager
def hook_refusals() -> Iterator[None]:
    """The hook use case's refusals as HTTP problems: one mapping for the EHR hooks
    and the intake portal (400 envelope, 412 data unobtainable, 422 not valid FHIR)."""
    try:
        yield
    except BadRequest as exc:
        raise Problem(400, str(exc), code="invalid", expression=[exc.expression]) from exc
    except DataUnavailable as exc:
        raise Problem(412, str(exc), code="not-found") from exc
    except QuestionnaireResponseInvalid as exc:
        raise Problem(422, str(exc), code="invalid", expression=exc.expression) from exc


@bp.get("/cds-services")
def discovery() -> Response:
    services = [service.discovery() for service in runtime().handler.catalogue]
    return jsonify({"services": services})


def _service_or_404(service_id: str) -> CdsService:
    service = runtime().handler.services.get(service_id)
    if service is None:
        raise Problem(404, f"Unknown CDS service '{service_id}'", code="not-found")
    return service


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    rt = runtime()
    trace = tracing.current()
    service = _service_or_404(service_id)
    body = read_json_object(request, max_depth=rt.settings.max_json_depth)
    trace.note_envelope(body)
    data = load_or_400(_hook_request_schema, body)
    with hook_refusals():
        result = rt.handler.handle(service, data, trace.client_iss)
    trace.result = result
    if trace.patient_ref is None and result.screening and result.screening.subject:
        trace.patient_ref = result.screening.subject
    return jsonify(result.response)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    rt = runtime()
    trace = tracing.current()
    _service_or_404(service_id)
    trace.hook = "feedback"
    body = read_json_object(request, max_depth=rt.settings.max_json_depth)
    items = load_or_400(_feedback_schema, body)["feedback"]
    try:
        stored = rt.feedback.record(service_id, items, trace.client_iss)
    except UnknownCards as exc:
        expression = [f"feedback[{index}].card" for index in exc.positions]
        raise Problem(400, str(exc), code="invalid", expression=expression) from exc
    except AuditUnavailable as exc:
        raise Problem(503, "Audit trail unavailable; retry later", code="transient") from exc
    except FeedbackRefused as exc:
        raise Problem(400, f"Feedback refused: {exc}", code="invalid") from exc
    return jsonify({"received": len(items), "stored": stored})
