"""What the audit trail stores: plain records, no ORM.

The HTTP layer builds these; the audit adapter (``service.audit``) persists
them. Never put a JWT or a FHIR ``access_token`` in a record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class IssuedCard:
    uuid: str
    rule_id: str
    indicator: str  # info | warning | critical
    topic: str  # source.topic.code, e.g. "cauda-equina"


@dataclass(frozen=True)
class FiredRule:
    rule_id: str
    rule_version: str
    #: ({"linkId": ..., "concept": ..., "answer": <code or value>}, ...)
    evidence: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class InvocationRecord:
    id: uuid.UUID
    occurred_at: datetime  # timezone-aware, UTC
    http_status: int
    latency_ms: float
    service_id: str | None = None
    hook: str | None = None
    hook_instance: str | None = None
    client_iss: str | None = None
    tenant: str | None = None
    patient_ref: str | None = None
    encounter_ref: str | None = None
    qr_id: str | None = None
    qr_version: str | None = None
    qr_sha256: str | None = None
    questionnaire: str | None = None
    rules_version: str | None = None
    #: where the QR came from: context | prefetch | fhirServer
    qr_source: str | None = None
    fired_rules: tuple[FiredRule, ...] = ()
    cards: tuple[IssuedCard, ...] = ()
    error_code: str | None = None  # OperationOutcome issue code on failure
    error_detail: str | None = None  # the diagnostics sent to the client (never a trace)


@dataclass(frozen=True)
class FeedbackRecord:
    id: uuid.UUID
    received_at: datetime
    service_id: str
    card_uuid: str
    outcome: str  # accepted | overridden
    outcome_timestamp: datetime
    accepted_suggestions: tuple[str, ...] = ()
    override_reason: dict[str, Any] | None = None
    client_iss: str | None = None


@dataclass(frozen=True)
class RefusalCount:
    """Calls refused before authentication, counted per client per time window.

    One record per (client, status, window) per process: strangers cost a counter,
    not a row each. ``client_key`` is whatever the HTTP layer identifies a client by
    (e.g. its address); the audit bounds its length.
    """

    id: uuid.UUID
    client_key: str
    http_status: int
    window_start: datetime
    window_seconds: int
    count: int
    first_at: datetime
    last_at: datetime


AuditRecord = InvocationRecord | FeedbackRecord | RefusalCount


class AuditUnavailable(RuntimeError):
    """The database cannot answer a question that needs it (not a write)."""


class ReplayUnavailable(AuditUnavailable):
    """The replay store cannot say whether a jti is new (the auth layer answers 503)."""


class FeedbackRefused(ValueError):
    """The audit refuses feedback for its content (e.g. a card it never issued)."""


class ReplayStore(Protocol):
    """CDS Hooks 2.0 replay protection: each (iss, jti) is accepted once before it expires."""

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen before it expires; False on replay."""


@dataclass(frozen=True)
class JtiClaim:
    """A token's ``jti``, claimed in the pod's replay ledger at the gate and not yet settled
    in PostgreSQL: the hook call's audit write settles it (one statement for both)."""

    iss: str
    #: the stored key (``codec.bounded_key`` of the token's jti)
    jti: str
    expires_at: datetime
    #: when it was claimed (an expired row older than this may be taken over)
    at: datetime
    #: PostgreSQL was taking claims when this one was made (else it is pending already)
    ask_database: bool
    #: the pod ledger holds the claim (False: the ledger failed, PostgreSQL alone decides)
    held_locally: bool


@runtime_checkable
class DeferredReplayStore(ReplayStore, Protocol):
    """A replay store whose check can be split: claimed in the pod now, settled later."""

    def claim_jti(self, iss: str, jti: str, expires_at: datetime) -> JtiClaim | None:
        """None when this pod has seen (iss, jti) before it expired (a replay); else the
        claim, to be settled (``settle_jti`` or the audit write) before cards leave."""

    def settle_jti(self, claim: JtiClaim) -> bool:
        """Settle a claim on its own: True when (iss, jti) is new everywhere; False on
        replay. Raises ``ReplayUnavailable`` (fail-closed) or ``ValueError`` (refused)."""


class AuditTrail(Protocol):
    """The port the HTTP layer talks to. Implemented by ``service.audit``."""

    def record_invocation(self, record: InvocationRecord) -> None:
        """Persist; never raises. Spools to local disk when the database is down."""

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]:
        """Which of these card uuids the audit says were issued (DB + spool); with
        ``issuer``, only those issued to that client (feedback is the issuer's to give)."""

    def record_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Persist feedback; an identical repeat is stored once. Returns rows new."""

    def record_refusal(self, client_key: str, status: int, at: datetime) -> None:
        """Count one call refused before authentication; never raises."""

    def health(self) -> dict[str, Any]:
        """{"database": "up"|"down", "spool_depth": int}."""

    def close(self) -> None: ...


@runtime_checkable
class ClaimingAuditTrail(AuditTrail, Protocol):
    """An audit trail that settles a hook call's ``jti`` together with its record."""

    def record_claimed(self, record: InvocationRecord, claim: JtiClaim) -> bool:
        """Settle ``claim`` and persist ``record`` (one statement and one commit when the
        database answers); False when the jti turns out to be a replay, and then nothing
        is recorded. Raises like ``DeferredReplayStore.settle_jti``."""
