"""The audit record of one call under /cds-services/ or /intake/ (errors included), built
from its trace.

Never contains the JWT or the access token: the trace holds references only.
"""

from __future__ import annotations

from service.audit.records import FiredRule, InvocationRecord, IssuedCard
from service.http.trace import RequestTrace


def build_record(trace: RequestTrace, status: int, latency_ms: float) -> InvocationRecord:
    result = trace.result
    screening = result.screening if result is not None else None
    findings = screening.evaluation.findings if screening is not None else ()
    fired = tuple(
        FiredRule(
            rule_id=finding.rule_id,
            rule_version=finding.rule_version,
            evidence=tuple(
                {"linkId": a.link_id, "concept": a.concept, "answer": a.answer_code or a.value}
                for a in finding.evidence
            ),
        )
        for finding in findings
    )
    cards = tuple(
        IssuedCard(
            uuid=finding.card_uuid,
            rule_id=finding.rule_id,
            indicator=finding.indicator,
            topic=finding.topic,
        )
        for finding in findings
    )
    problem = trace.problem
    return InvocationRecord(
        id=trace.id,
        occurred_at=trace.started_at,
        http_status=status,
        latency_ms=latency_ms,
        service_id=trace.audit_service_id,
        hook=trace.hook,
        hook_instance=(trace.hook_instance or "")[:64] or None,
        client_iss=trace.client_iss,
        tenant=trace.tenant,
        patient_ref=trace.patient_ref,
        encounter_ref=trace.encounter_ref,
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
