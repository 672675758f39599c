"""CDS Hooks 2.0 endpoints: discovery, service calls, feedback."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from service.audit.records import AuditUnavailable, FeedbackRecord, FeedbackRefused
from service.hooks import BadRequest, DataUnavailable, QuestionnaireResponseInvalid
from service.http.body import read_json_object
from service.http.errors import Problem
from service.http.runtime import runtime
from service.http.schemas import FeedbackSchema, HookRequestSchema, load_or_400

bp = Blueprint("cds", __name__)

_hook_request_schema = HookRequestSchema()
_feedback_schema = FeedbackSchema()


@bp.get("/cds-services")
def discovery() -> Response:
    services = [service.discovery() for service in runtime().handler.catalogue]
    return jsonify({"services": services})


def _service_or_404(service_id: str) -> Any:
    service = runtime().handler.services.get(service_id)
    if service is None:
        raise Problem(404, f"Unknown CDS service '{service_id}'", code="not-found")
    return service


def _note_envelope(body: dict[str, Any]) -> None:
    """Keep what the audit should know even if validation fails later."""
    hook = body.get("hook")
    g.hook = hook if isinstance(hook, str) else None
    instance = body.get("hookInstance")
    g.hook_instance = instance if isinstance(instance, str) else None
    context = body.get("context")
    if isinstance(context, dict):
        patient, encounter = context.get("patientId"), context.get("encounterId")
        g.patient_ref = f"Patient/{patient}" if isinstance(patient, str) and patient else None
        g.encounter_ref = (
            f"Encounter/{encounter}" if isinstance(encounter, str) and encounter else None
        )


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    rt = runtime()
    service = _service_or_404(service_id)
    body = read_json_object(request, max_depth=rt.settings.max_json_depth)
    _note_envelope(body)
    data = load_or_400(_hook_request_schema, body)
    try:
        result = rt.handler.handle(service, data)
    except BadRequest as exc:
        raise Problem(400, str(exc), code="invalid", expression=[exc.expression]) from exc
    except DataUnavailable as exc:
        raise Problem(412, str(exc), code="not-found") from exc
    except QuestionnaireResponseInvalid as exc:
        raise Problem(422, str(exc), code="invalid", expression=exc.expression) from exc
    g.hook_result = result
    if g.get("patient_ref") is None and result.screening.subject:
        g.patient_ref = result.screening.subject
    return jsonify(result.response)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    rt = runtime()
    _service_or_404(service_id)
    g.hook = "feedback"
    body = read_json_object(request, max_depth=rt.settings.max_json_depth)
    items = load_or_400(_feedback_schema, body)["feedback"]
    uuids = [str(item["card"]) for item in items]
    try:
        known = rt.audit.known_card_uuids(uuids)
    except AuditUnavailable as exc:
        raise Problem(503, "Audit trail unavailable; retry later", code="transient") from exc
    unknown = [index for index, card in enumerate(uuids) if card not in known]
    if unknown:
        raise Problem(
            400,
            "Feedback names card(s) this service never issued: "
            + ", ".join(uuids[index] for index in unknown),
            code="invalid",
            expression=[f"feedback[{index}].card" for index in unknown],
        )
    now = datetime.now(UTC)
    records = [
        FeedbackRecord(
            id=uuid.uuid4(),
            received_at=now,
            service_id=service_id,
            card_uuid=str(item["card"]),
            outcome=item["outcome"],
            outcome_timestamp=item["outcomeTimestamp"],
            accepted_suggestions=tuple(
                str(s.get("id")) for s in item["acceptedSuggestions"] if s.get("id") is not None
            ),
            override_reason=item["overrideReason"],
            client_iss=g.get("client_iss"),
        )
        for item in items
    ]
    try:
        rt.audit.record_feedback(records)
    except FeedbackRefused as exc:
        raise Problem(400, f"Feedback refused: {exc}", code="invalid") from exc
    return Response(status=200)
