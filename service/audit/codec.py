"""Audit records <-> JSON-ready dicts: the one encoding used by the spool and the JSON columns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from service.audit.records import (
    AuditRecord,
    FeedbackRecord,
    FiredRule,
    InvocationRecord,
    IssuedCard,
    RefusalCount,
)


def json_default(value: object) -> Any:
    """What ``json.dumps`` cannot encode by itself (FHIR answers may carry these)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"audit: cannot encode {type(value).__name__} as JSON")


def dumps(value: object, *, ascii_only: bool = False) -> str:
    """Compact, key-sorted JSON (stable, so it can be hashed).

    ``ascii_only`` escapes every non-ASCII character: the text then encodes even when a
    client sent a lone surrogate (``"\\ud800"``), which UTF-8 cannot hold.
    """
    return json.dumps(
        value,
        default=json_default,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=ascii_only,
    )


#: Longest identifier kept as it is in a unique index; longer ones are keyed by their hash
#: (a btree entry must stay under ~2,700 bytes, and clients choose these strings).
MAX_KEY_CHARS = 128


def bounded_key(value: str) -> str:
    """``value`` itself when short, else ``sha256:<hex>`` of it: the same for the same value."""
    if len(value) <= MAX_KEY_CHARS:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def fired_rules_json(rules: tuple[FiredRule, ...]) -> list[dict[str, Any]]:
    return [
        {"rule_id": r.rule_id, "rule_version": r.rule_version, "evidence": list(r.evidence)}
        for r in rules
    ]


#: InvocationRecord fields stored as they are (everything but the nested tuples).
_PLAIN_FIELDS = tuple(
    f.name for f in dataclasses.fields(InvocationRecord) if f.name not in {"fired_rules", "cards"}
)
#: The invocation row's columns, in the order of ``invocation_columns``.
INVOCATION_COLUMNS = (*_PLAIN_FIELDS, "fired_rules")


def invocation_columns(record: InvocationRecord) -> dict[str, Any]:
    """The invocation row's values (native types); issued cards are rows of their own."""
    columns = {name: getattr(record, name) for name in _PLAIN_FIELDS}
    columns["fired_rules"] = fired_rules_json(record.fired_rules)
    return columns


def invocation_to_dict(record: InvocationRecord) -> dict[str, Any]:
    """JSON-ready: the spool's encoding of a record."""
    return {
        **invocation_columns(record),
        "id": str(record.id),
        "occurred_at": record.occurred_at.isoformat(),
        "cards": [
            {"uuid": c.uuid, "rule_id": c.rule_id, "indicator": c.indicator, "topic": c.topic}
            for c in record.cards
        ],
    }


def invocation_from_dict(data: dict[str, Any]) -> InvocationRecord:
    return InvocationRecord(
        id=uuid.UUID(data["id"]),
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        http_status=int(data["http_status"]),
        latency_ms=float(data["latency_ms"]),
        service_id=data.get("service_id"),
        hook=data.get("hook"),
        hook_instance=data.get("hook_instance"),
        client_iss=data.get("client_iss"),
        tenant=data.get("tenant"),
        patient_ref=data.get("patient_ref"),
        encounter_ref=data.get("encounter_ref"),
        qr_id=data.get("qr_id"),
        qr_version=data.get("qr_version"),
        qr_sha256=data.get("qr_sha256"),
        questionnaire=data.get("questionnaire"),
        rules_version=data.get("rules_version"),
        qr_source=data.get("qr_source"),
        fired_rules=tuple(
            FiredRule(
                rule_id=r["rule_id"],
                rule_version=r["rule_version"],
                evidence=tuple(r.get("evidence", ())),
            )
            for r in data.get("fired_rules", ())
        ),
        cards=tuple(
            IssuedCard(
                uuid=c["uuid"], rule_id=c["rule_id"], indicator=c["indicator"], topic=c["topic"]
            )
            for c in data.get("cards", ())
        ),
        error_code=data.get("error_code"),
        error_detail=data.get("error_detail"),
    )


def feedback_to_dict(record: FeedbackRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "received_at": record.received_at.isoformat(),
        "service_id": record.service_id,
        "card_uuid": record.card_uuid,
        "outcome": record.outcome,
        "outcome_timestamp": record.outcome_timestamp.isoformat(),
        "accepted_suggestions": list(record.accepted_suggestions),
        "override_reason": record.override_reason,
        "client_iss": record.client_iss,
    }


def feedback_from_dict(data: dict[str, Any]) -> FeedbackRecord:
    return FeedbackRecord(
        id=uuid.UUID(data["id"]),
        received_at=datetime.fromisoformat(data["received_at"]),
        service_id=data["service_id"],
        card_uuid=data["card_uuid"],
        outcome=data["outcome"],
        outcome_timestamp=datetime.fromisoformat(data["outcome_timestamp"]),
        accepted_suggestions=tuple(data.get("accepted_suggestions", ())),
        override_reason=data.get("override_reason"),
        client_iss=data.get("client_iss"),
    )


def feedback_fingerprint(record: FeedbackRecord) -> str:
    """sha256 of everything the client said: an identical repeat has the same fingerprint.

    The server-side ``id`` and ``received_at`` are left out; everything else counts.
    ``extra`` (a field records no longer have) stays in the hashed text as ``{}``, so a
    repeat of feedback stored by an earlier release still has the same fingerprint.
    """
    said = feedback_to_dict(record)
    del said["id"], said["received_at"]
    said["extra"] = {}
    return hashlib.sha256(dumps(said).encode("utf-8")).hexdigest()


def refusal_to_dict(record: RefusalCount) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "client_key": record.client_key,
        "http_status": record.http_status,
        "window_start": record.window_start.isoformat(),
        "window_seconds": record.window_seconds,
        "count": record.count,
        "first_at": record.first_at.isoformat(),
        "last_at": record.last_at.isoformat(),
    }


def refusal_from_dict(data: dict[str, Any]) -> RefusalCount:
    return RefusalCount(
        id=uuid.UUID(data["id"]),
        client_key=data["client_key"],
        http_status=int(data["http_status"]),
        window_start=datetime.fromisoformat(data["window_start"]),
        window_seconds=int(data["window_seconds"]),
        count=int(data["count"]),
        first_at=datetime.fromisoformat(data["first_at"]),
        last_at=datetime.fromisoformat(data["last_at"]),
    )


def record_kind(record: AuditRecord) -> str:
    """The spool's and the dead-letter store's name for the record's kind."""
    if isinstance(record, InvocationRecord):
        return "invocation"
    return "feedback" if isinstance(record, FeedbackRecord) else "refusals"


def record_to_dict(record: AuditRecord) -> dict[str, Any]:
    if isinstance(record, InvocationRecord):
        return invocation_to_dict(record)
    if isinstance(record, FeedbackRecord):
        return feedback_to_dict(record)
    return refusal_to_dict(record)


def record_from_dict(kind: object, data: dict[str, Any]) -> AuditRecord:
    if kind == "invocation":
        return invocation_from_dict(data)
    if kind == "feedback":
        return feedback_from_dict(data)
    if kind == "refusals":
        return refusal_from_dict(data)
    raise ValueError(f"audit record of unknown kind {kind!r}")
