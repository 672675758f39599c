"""The audit schema: SQLAlchemy 2 typed tables. Changed only through Alembic (``migrations/``).

Five tables, all append-only from the service's point of view:

* ``invocation``   one row per hook call (errors too); ``seq`` is the arrival order.
* ``issued_card``  the cards each invocation returned, keyed by invocation and position.
* ``card_feedback`` what the clinician did with a card (accepted / overridden).
* ``used_jti``     client JWT ids already seen, for replay protection across pods.
* ``refused_call`` calls refused before authentication, counted per client per window.

PostgreSQL gets native ``uuid``, ``timestamptz`` and ``jsonb``; SQLite (``make run``)
gets ``CHAR(32)``, ISO text and JSON text through the same types.

Scale (deploy/README.md "Scaling"): on PostgreSQL ``invocation`` is
``PARTITION BY RANGE (occurred_at)``, one partition per month (``invocation_yYYYYmMM``)
plus a ``DEFAULT`` partition, so an insert never fails for lack of a month (revision
0002; maintenance in ``partitions.py``). PostgreSQL requires every unique key of a
partitioned table to hold the partition key, hence the primary key ``(id, occurred_at)``:
the spool's replay stays idempotent because a record keeps its ``occurred_at``, and
``issued_card`` carries ``invocation_occurred_at`` for its composite foreign key.
``seq`` (the arrival order) is filled by the database: a sequence on PostgreSQL, the
rowid on SQLite, where ``invocation`` stays 0001's plain table (``seq`` primary key,
``id`` unique) and only ``issued_card.invocation_occurred_at`` was added.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    FetchedValue,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import JSON

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Longest ``patient_ref`` (characters) in its index (revision 0003); longer ones are
#: stored in full but found by reading the period's rows.
MAX_INDEXED_PATIENT_REF = 256
BOUNDED_PATIENT_REF = text(f"length(patient_ref) <= {MAX_INDEXED_PATIENT_REF}")

#: JSONB on PostgreSQL, JSON text elsewhere.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")
#: A bigint identity on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL; always hands back timezone-aware UTC datetimes.

    Naive datetimes are refused: an audit time without a zone is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"audit times must be timezone-aware, got naive {value!r}")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = metadata


class InvocationRow(Base):
    """One hook call, as answered (see ``records.InvocationRecord``)."""

    __tablename__ = "invocation"

    #: arrival order, assigned by the database (sequence on PostgreSQL, rowid on SQLite)
    seq: Mapped[int] = mapped_column(
        SequenceNumber, server_default=FetchedValue(), autoincrement=False
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    #: the partition key on PostgreSQL
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True, index=True)
    #: when the row reached the database (later than occurred_at if it was spooled)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now())
    http_status: Mapped[int] = mapped_column(SmallInteger)
    latency_ms: Mapped[float] = mapped_column(Float)
    service_id: Mapped[str | None] = mapped_column(Text)
    hook: Mapped[str | None] = mapped_column(Text)
    hook_instance: Mapped[str | None] = mapped_column(Text)
    client_iss: Mapped[str | None] = mapped_column(Text)
    tenant: Mapped[str | None] = mapped_column(Text)
    patient_ref: Mapped[str | None] = mapped_column(Text)
    encounter_ref: Mapped[str | None] = mapped_column(Text)
    qr_id: Mapped[str | None] = mapped_column(Text)
    qr_version: Mapped[str | None] = mapped_column(Text)
    qr_sha256: Mapped[str | None] = mapped_column(String(64))
    questionnaire: Mapped[str | None] = mapped_column(Text)
    rules_version: Mapped[str | None] = mapped_column(Text)
    qr_source: Mapped[str | None] = mapped_column(Text)
    #: [{"rule_id", "rule_version", "evidence": [{"linkId", "concept", "answer"}]}]
    fired_rules: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # partial: a client-chosen id too long for a btree entry is stored, not indexed
        Index(
            None,
            "patient_ref",
            "occurred_at",
            postgresql_where=BOUNDED_PATIENT_REF,
            sqlite_where=BOUNDED_PATIENT_REF,
        ),
    )


class IssuedCardRow(Base):
    """A card an invocation returned; feedback refers to it by ``card_uuid``.

    Keyed by the invocation and the card's place in its response (revision 0004): a
    card uuid derives from hookInstance + rule id, so a repeated hookInstance issues
    the same uuid again, and each call keeps its own rows.
    """

    __tablename__ = "issued_card"

    invocation_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    #: the card's place in the response, from 0
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    card_uuid: Mapped[str] = mapped_column(Text, index=True)
    #: the invocation's ``occurred_at`` (its partition key), for the composite foreign key
    invocation_occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rule_id: Mapped[str] = mapped_column(Text)
    indicator: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(
            ["invocation_id", "invocation_occurred_at"],
            ["invocation.id", "invocation.occurred_at"],
            ondelete="RESTRICT",
        ),
        CheckConstraint("indicator IN ('info', 'warning', 'critical')", name="indicator"),
    )


class FeedbackRow(Base):
    """CDS Hooks feedback on one issued card."""

    __tablename__ = "card_feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    #: sha256 of what the client said; an identical repeat is stored once
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    #: an issued card's uuid (checked by the store: it may have been issued more than once)
    card_uuid: Mapped[str] = mapped_column(Text, index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    service_id: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_timestamp: Mapped[datetime] = mapped_column(UtcDateTime())
    accepted_suggestions: Mapped[list[str]] = mapped_column(JsonDocument)
    override_reason: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    client_iss: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (CheckConstraint("outcome IN ('accepted', 'overridden')", name="outcome"),)


class UsedJti(Base):
    """A client JWT id seen before it expired (CDS Hooks 2.0 replay protection)."""

    __tablename__ = "used_jti"

    iss: Mapped[str] = mapped_column(Text, primary_key=True)
    jti: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class RefusedCallRow(Base):
    """Calls refused before authentication (401s): a count per client per time window.

    One row per (client, status, window) per process that saw them (revision 0005);
    ``id`` makes the spool's replay exactly-once. Sum ``count`` to read it.
    """

    __tablename__ = "refused_call"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    window_seconds: Mapped[int] = mapped_column(Integer)
    #: how the HTTP layer tells clients apart (e.g. an address); at most 128 characters
    client_key: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int] = mapped_column(SmallInteger)
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now())


def _table(row: type[Base]) -> Table:
    table = row.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{row.__name__} is not mapped to a table")
    return table


invocation = _table(InvocationRow)
issued_card = _table(IssuedCardRow)
card_feedback = _table(FeedbackRow)
used_jti = _table(UsedJti)
refused_call = _table(RefusedCallRow)
