"""Read-only audit queries: what did we tell whom about which patient, and what did they do."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select

from service.audit.db import read_only
from service.audit.models import (
    BOUNDED_PATIENT_REF,
    MAX_INDEXED_PATIENT_REF,
    card_feedback,
    invocation,
    issued_card,
    refused_call,
)
from service.engine import INDICATORS


@dataclass(frozen=True)
class AuditQuery:
    """Filters; all optional. ``patient`` matches ``Patient/123`` given ``123`` too."""

    patient: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    indicator: str | None = None
    limit: int = 200

    def __post_init__(self) -> None:
        if self.indicator is not None and self.indicator not in INDICATORS:
            raise ValueError(f"indicator must be one of {INDICATORS}, got {self.indicator!r}")
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class FeedbackEntry:
    outcome: str
    outcome_timestamp: datetime
    received_at: datetime
    accepted_suggestions: tuple[str, ...]
    override_reason: dict[str, Any] | None
    client_iss: str | None


@dataclass(frozen=True)
class CardEntry:
    card_uuid: str
    position: int
    indicator: str
    rule_id: str
    topic: str
    #: every outcome the client sent, as history, oldest ``outcomeTimestamp`` first
    feedback: tuple[FeedbackEntry, ...]
    #: the outcome with the latest ``outcomeTimestamp`` (None: no feedback)
    current_outcome: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One invocation with the cards it returned and the feedback on them."""

    id: uuid.UUID
    occurred_at: datetime
    service_id: str | None
    hook: str | None
    hook_instance: str | None
    client_iss: str | None
    patient_ref: str | None
    encounter_ref: str | None
    http_status: int
    error_code: str | None
    rules_version: str | None
    questionnaire: str | None
    qr_id: str | None
    qr_version: str | None
    fired_rules: tuple[dict[str, Any], ...]
    cards: tuple[CardEntry, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = str(self.id)
        return data


def _invocations(query: AuditQuery) -> Select[Any]:
    stmt = select(invocation)
    if query.patient is not None:
        refs = (query.patient, f"Patient/{query.patient}")
        stmt = stmt.where(invocation.c.patient_ref.in_(refs))
        if all(len(ref) <= MAX_INDEXED_PATIENT_REF for ref in refs):
            stmt = stmt.where(BOUNDED_PATIENT_REF)  # lets the planner use the partial index
    if query.since is not None:
        stmt = stmt.where(invocation.c.occurred_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(invocation.c.occurred_at < query.until)
    if query.service is not None:
        stmt = stmt.where(invocation.c.service_id == query.service)
    if query.indicator is not None:
        stmt = stmt.where(
            select(issued_card.c.card_uuid)
            .where(issued_card.c.invocation_id == invocation.c.id)
            .where(issued_card.c.indicator == query.indicator)
            .exists()
        )
    return stmt.order_by(invocation.c.occurred_at.desc(), invocation.c.seq.desc()).limit(
        query.limit
    )


def find_invocations(engine: Engine, query: AuditQuery) -> list[AuditEntry]:
    """The newest ``query.limit`` matching invocations, oldest first, in a read-only transaction."""
    with read_only(engine) as conn:
        rows = list(reversed(conn.execute(_invocations(query)).mappings().all()))
        ids = [row["id"] for row in rows]
        cards = (
            conn.execute(
                select(issued_card)
                .where(issued_card.c.invocation_id.in_(ids))
                .order_by(issued_card.c.position)
            )
            .mappings()
            .all()
            if ids
            else []
        )
        card_uuids = [card["card_uuid"] for card in cards]
        feedback = (
            conn.execute(
                select(card_feedback)
                .where(card_feedback.c.card_uuid.in_(card_uuids))
                .order_by(card_feedback.c.outcome_timestamp, card_feedback.c.received_at)
            )
            .mappings()
            .all()
            if card_uuids
            else []
        )
    feedback_by_card: dict[str, list[FeedbackEntry]] = defaultdict(list)
    for fb in feedback:
        feedback_by_card[fb["card_uuid"]].append(
            FeedbackEntry(
                outcome=fb["outcome"],
                outcome_timestamp=fb["outcome_timestamp"],
                received_at=fb["received_at"],
                accepted_suggestions=tuple(fb["accepted_suggestions"]),
                override_reason=fb["override_reason"],
                client_iss=fb["client_iss"],
            )
        )
    cards_by_invocation: dict[uuid.UUID, list[CardEntry]] = defaultdict(list)
    for card in cards:
        cards_by_invocation[card["invocation_id"]].append(
            CardEntry(
                card_uuid=card["card_uuid"],
                position=card["position"],
                indicator=card["indicator"],
                rule_id=card["rule_id"],
                topic=card["topic"],
                feedback=tuple(feedback_by_card[card["card_uuid"]]),
                current_outcome=(
                    feedback_by_card[card["card_uuid"]][-1].outcome
                    if feedback_by_card[card["card_uuid"]]
                    else None
                ),
            )
        )
    return [
        AuditEntry(
            id=row["id"],
            occurred_at=row["occurred_at"],
            service_id=row["service_id"],
            hook=row["hook"],
            hook_instance=row["hook_instance"],
            client_iss=row["client_iss"],
            patient_ref=row["patient_ref"],
            encounter_ref=row["encounter_ref"],
            http_status=row["http_status"],
            error_code=row["error_code"],
            rules_version=row["rules_version"],
            questionnaire=row["questionnaire"],
            qr_id=row["qr_id"],
            qr_version=row["qr_version"],
            fired_rules=tuple(row["fired_rules"]),
            cards=tuple(cards_by_invocation[row["id"]]),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class RefusalSummary:
    """Calls refused before authentication from one client with one status, in a period."""

    client_key: str
    http_status: int
    count: int
    first_at: datetime
    last_at: datetime

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_refusals(
    engine: Engine, since: datetime | None = None, until: datetime | None = None
) -> list[RefusalSummary]:
    """Refused calls summed per client and status, most first, in a read-only transaction."""
    total = func.sum(refused_call.c.count)
    stmt = select(
        refused_call.c.client_key,
        refused_call.c.http_status,
        total.label("count"),
        func.min(refused_call.c.first_at).label("first_at"),
        func.max(refused_call.c.last_at).label("last_at"),
    ).group_by(refused_call.c.client_key, refused_call.c.http_status)
    if since is not None:
        stmt = stmt.where(refused_call.c.last_at >= since)
    if until is not None:
        stmt = stmt.where(refused_call.c.first_at < until)
    stmt = stmt.order_by(total.desc(), refused_call.c.client_key)
    with read_only(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        RefusalSummary(
            client_key=row["client_key"],
            http_status=row["http_status"],
            count=int(row["count"]),
            first_at=_utc(row["first_at"]),
            last_at=_utc(row["last_at"]),
        )
        for row in rows
    ]


def _utc(value: datetime) -> datetime:
    """min()/max() results skip the column type's conversion on SQLite."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
