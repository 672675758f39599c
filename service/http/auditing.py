"""Every call under /cds-services/ (errors included) leaves an audit record.

The record is assembled after the response is ready, from what the request
path left on ``flask.g``; it never contains the JWT or the access token.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, request

from service.audit.records import FiredRule, InvocationRecord, IssuedCard
from service.hooks import HookResult
from service.http.runtime import runtime


def is_audited() -> bool:
    """Whether this request leaves an audit record (every POST under /cds-services/)."""
    return request.method == "POST" and request.path.startswith("/cds-services/")


def build_record(response: Response, latency_ms: float) -> InvocationRecord:
    result: HookResult | None = g.get("hook_result")
    problem = g.get("problem")
    path_parts = request.path.split("/")
    service_id = path_parts[2] if len(path_parts) > 2 else None
    fired: tuple[FiredRule, ...] = ()
    cards: tuple[IssuedCard, ...] = ()
    screening = result.screening if result else None
    if screening is not None:
        fired = tuple(
            FiredRule(
                rule_id=finding.rule_id,
                rule_version=finding.rule_version,
                evidence=tuple(
                    {"linkId": a.link_id, "concept": a.concept, "answer": a.answer_code or a.value}
                    for a in finding.evidence
                ),
            )
            for finding in screening.evaluation.findings
        )
        cards = tuple(
            IssuedCard(
                uuid=finding.card_uuid,
                rule_id=finding.rule_id,
                indicator=finding.indicator,
                topic=finding.topic,
            )
            for finding in screening.evaluation.findings
        )
    return InvocationRecord(
        id=g.get("invocation_id") or uuid.uuid4(),
        occurred_at=g.get("started_at") or datetime.now(UTC),
        http_status=response.status_code,
        latency_ms=latency_ms,
        service_id=service_id[:200] if service_id else None,
        hook=g.get("hook"),
        hook_instance=(g.get("hook_instance") or "")[:64] or None,
        client_iss=g.get("client_iss"),
        tenant=g.get("tenant"),
        patient_ref=g.get("patient_ref"),
        encounter_ref=g.get("encounter_ref"),
        qr_id=screening.qr_id if screening else None,
        qr_version=screening.qr_version if screening else None,
        qr_sha256=screening.qr_sha256 if screening else None,
        questionnaire=screening.questionnaire if screening else None,
        rules_version=screening.evaluation.rules_version if screening else None,
        qr_source=result.qr_source if result else None,
        fired_rules=fired,
        cards=cards,
        error_code=problem.code if problem is not None else None,
        error_detail=problem.diagnostics[:1000] if problem is not None else None,
    )


def install(app: Flask) -> None:
    @app.before_request
    def _start_clock() -> None:
        g.started = time.perf_counter()
        g.started_at = datetime.now(UTC)
        g.invocation_id = uuid.uuid4()

    @app.after_request
    def _audit(response: Response) -> Response:
        if is_audited():
            latency_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
            runtime().audit.record_invocation(build_record(response, latency_ms))
        return response
