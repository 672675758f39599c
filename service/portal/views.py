"""The portal's routes: the page, its live screen and the hand-over to the clinic.

``GET /intake[/<questionnaire-id>]``  the page (LHC-Forms renders the bundled form)
``POST /intake/screen``   a QuestionnaireResponse (in-progress or completed) -> cards
``POST /intake/submit``   a completed one -> screened, then stored on ``PORTAL_FHIR_SERVER``

Both POSTs pass the portal's guard (same origin, double-submit token, rate limit),
read the body under the service's limits, run the intake hook's screen with the
portal's strict conformance, and are audited (``service_id`` "intake-portal").
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for

from service.cds.hook import HookResult
from service.http import trace as tracing
from service.http.body import read_json_object
from service.http.cds import hook_refusals
from service.http.errors import Problem
from service.http.trace import RequestTrace
from service.portal import Portal, portal
from service.portal.delivery import DeliveryFailed
from service.portal.guard import (
    check_csrf_token,
    check_rate,
    check_same_origin,
    client_key,
    new_csrf_token,
    set_csrf_cookie,
)

bp = Blueprint(
    "portal",
    __name__,
    url_prefix="/intake",
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)

INTAKE_HOOK = "questionnaire-inprogress"
SUBMIT_HOOK = "portal-submit"
#: FHIR ``id`` (R4 datatype): what a clinic's link may carry as ``?patient=``.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

PAGE_HEADERS = {
    # LHC-Forms sets inline styles; every script is a file under /intake/static.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def emergency_call(number: str | None) -> str:
    """What the page tells the patient to call (``EMERGENCY_NUMBER``, else the service)."""
    return f"call {number}" if number else "call emergency services"


@bp.get("")
def intake_page() -> Response:
    library = portal().handler.knowledge.library
    found = library.get(library.intake_canonical)
    if found is None or not found.id:
        raise Problem(404, "No intake Questionnaire is bundled", code="not-found")
    return _page(found.id)


@bp.get("/<questionnaire_id>")
def questionnaire_page(questionnaire_id: str) -> Response:
    return _page(questionnaire_id)


def _page(questionnaire_id: str) -> Response:
    p = portal()
    questionnaire = p.handler.knowledge.library.by_id(questionnaire_id)
    if questionnaire is None:
        raise Problem(404, f"Questionnaire/{questionnaire_id} is not known", code="not-found")
    patient = request.args.get("patient", "")
    token = new_csrf_token()
    config: dict[str, Any] = {
        "questionnaire": questionnaire,
        "screenUrl": url_for("portal.screen"),
        "submitUrl": url_for("portal.submit") if p.delivery is not None else None,
        "csrfToken": token,
        "patient": f"Patient/{patient}" if _FHIR_ID.fullmatch(patient) else None,
        "emergencyCall": emergency_call(p.settings.emergency_number),
    }
    html = render_template(
        "intake.html",
        config=config,
        title=questionnaire.get("title") or questionnaire.get("name") or "Intake",
        emergency_call=emergency_call(p.settings.emergency_number),
        delivers=p.delivery is not None,
    )
    response = Response(html, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    set_csrf_cookie(response, token, secure=p.settings.public_url.startswith("https://"))
    return response


def _guard(p: Portal) -> None:
    check_rate(p.limiter, client_key(request, p.settings.portal_client_ip_header))
    check_same_origin(request, p.settings.public_url)
    check_csrf_token(request)


def _read_response(p: Portal) -> dict[str, Any]:
    body = read_json_object(request, max_depth=p.settings.max_json_depth)
    if body.get("resourceType") != "QuestionnaireResponse":
        raise Problem(
            422,
            "The body must be a QuestionnaireResponse",
            code="invalid",
            expression=["QuestionnaireResponse.resourceType"],
        )
    canonical = body.get("questionnaire")
    library = p.handler.knowledge.library
    if not isinstance(canonical, str) or library.get(canonical) is None:
        raise Problem(
            422,
            "The portal screens answers to its own forms only (QuestionnaireResponse."
            "questionnaire must name a bundled Questionnaire)",
            code="invalid",
            expression=["QuestionnaireResponse.questionnaire"],
        )
    return body


def _screen(p: Portal, qr: dict[str, Any], trace: RequestTrace) -> HookResult:
    service = next(s for s in p.handler.catalogue if s.hook == INTAKE_HOOK)
    trace.hook_instance = str(trace.id)
    call = {
        "hook": INTAKE_HOOK,
        "hookInstance": trace.hook_instance,
        "context": {"questionnaireResponse": qr},
    }
    with hook_refusals():
        result = p.handler.handle(service, call, strict=True)
    trace.result = replace(result, qr_source="portal")
    if result.screening is not None and result.screening.subject:
        trace.patient_ref = result.screening.subject
    return result


@bp.post("/screen")
def screen() -> Response:
    p = portal()
    trace = tracing.current()
    trace.hook = INTAKE_HOOK
    _guard(p)
    result = _screen(p, _read_response(p), trace)
    return jsonify(result.response)


@bp.post("/submit")
def submit() -> Response:
    p = portal()
    trace = tracing.current()
    trace.hook = SUBMIT_HOOK
    _guard(p)
    if p.delivery is None:
        raise Problem(
            409,
            "This portal sends answers nowhere (no PORTAL_FHIR_SERVER); print or download them",
            code="not-supported",
        )
    qr = _read_response(p)
    if qr.get("status") != "completed":
        raise Problem(
            422,
            "Only a completed QuestionnaireResponse is sent to the clinic",
            code="invalid",
            expression=["QuestionnaireResponse.status"],
        )
    _screen(p, qr, trace)
    try:
        stored = p.delivery.send(qr)
    except DeliveryFailed as exc:
        raise Problem(502, f"{exc}; the answers were not stored there", code="transient") from exc
    response = jsonify({"stored": stored})
    response.status_code = 201
    return response
