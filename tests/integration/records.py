"""Builders for audit records in tests (realistic shapes, fresh uuids)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from service.audit.records import FeedbackRecord, FiredRule, InvocationRecord, IssuedCard

SERVICE = "back-pain-red-flags"


def invocation(
    *, patient: str = "Patient/p-1", cards: int = 1, **overrides: Any
) -> InvocationRecord:
    record_id = uuid.uuid4()
    issued = tuple(
        IssuedCard(
            uuid=str(uuid.uuid4()),
            rule_id=f"rule-{n}",
            indicator=("critical", "warning", "info")[n % 3],
            topic="cauda-equina",
        )
        for n in range(cards)
    )
    fields: dict[str, Any] = {
        "id": record_id,
        "occurred_at": datetime.now(UTC),
        "http_status": 200,
        "latency_ms": 12.5,
        "service_id": SERVICE,
        "hook": "patient-view",
        "hook_instance": str(uuid.uuid4()),
        "client_iss": "https://ehr.example.org",
        "patient_ref": patient,
        "encounter_ref": "Encounter/e-1",
        "qr_id": "qr-1",
        "qr_version": "3",
        "qr_sha256": "a" * 64,
        "questionnaire": "http://example.org/Questionnaire/back-pain|1.0",
        "rules_version": "2025.11",
        "qr_source": "context",
        "fired_rules": tuple(
            FiredRule(
                rule_id=card.rule_id,
                rule_version="1",
                evidence=({"linkId": "saddle-numbness", "answer": "yes"},),
            )
            for card in issued
        ),
        "cards": issued,
    }
    fields.update(overrides)
    return InvocationRecord(**fields)


def feedback(card_uuid: str, *, outcome: str = "overridden", **overrides: Any) -> FeedbackRecord:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "received_at": datetime.now(UTC),
        "service_id": SERVICE,
        "card_uuid": card_uuid,
        "outcome": outcome,
        "outcome_timestamp": datetime(2025, 11, 24, 9, 30, tzinfo=UTC),
        "override_reason": (
            {"reason": {"code": "patient-declined", "display": "Patient declined"}}
            if outcome == "overridden"
            else None
        ),
        "client_iss": "https://ehr.example.org",
    }
    fields.update(overrides)
    return FeedbackRecord(**fields)


def in_minutes(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)
