"""``SqlAuditStore``: the audit records in PostgreSQL (or SQLite for ``make run``).

A plain store: each method writes or reads in one short transaction and either
succeeds or raises (``SQLAlchemyError``, or ``FeedbackRefused``). What a failure means
is ``errors.classify``'s call; what to do about it is the spooling wrapper's
(``spooling.py``).
Hot path on SQLAlchemy Core statements built once; no ORM session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from service.audit import codec
from service.audit.errors import Failure, classify, describe
from service.audit.models import card_feedback, invocation, issued_card, refused_call
from service.audit.records import (
    AuditRecord,
    FeedbackRecord,
    FeedbackRefused,
    InvocationRecord,
    RefusalCount,
)

SUPPORTED_DIALECTS = ("postgresql", "sqlite")


def encodable(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (``"\\ud800"`` in JSON): no UTF-8 for it."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not encodable(text):
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def storable(value: Any) -> Any:
    """What PostgreSQL can hold: U+0000 and lone surrogates (clients can send both) become
    U+FFFD, a visible mark, instead of failing the whole record."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def invocation_row(record: InvocationRecord) -> dict[str, Any]:
    row: dict[str, Any] = storable(codec.invocation_columns(record))
    return row


def card_rows(record: InvocationRecord) -> list[dict[str, Any]]:
    return [
        {
            "card_uuid": card.uuid,
            "invocation_id": record.id,
            "invocation_occurred_at": record.occurred_at,
            "position": position,
            "rule_id": card.rule_id,
            "indicator": card.indicator,
            "topic": card.topic,
        }
        for position, card in enumerate(record.cards)
    ]


def feedback_row(record: FeedbackRecord) -> dict[str, Any]:
    row = {
        "id": record.id,
        "fingerprint": codec.feedback_fingerprint(record),
        "card_uuid": record.card_uuid,
        "received_at": record.received_at,
        "service_id": record.service_id,
        "outcome": record.outcome,
        "outcome_timestamp": record.outcome_timestamp,
        "accepted_suggestions": list(record.accepted_suggestions),
        "override_reason": record.override_reason,
        "client_iss": record.client_iss,
        "extra": {},  # a column of revision 0001 nothing fills any more
    }
    result: dict[str, Any] = storable(row)
    return result


def refusal_row(record: RefusalCount) -> dict[str, Any]:
    row = {
        "id": record.id,
        "window_start": record.window_start,
        "window_seconds": record.window_seconds,
        "client_key": record.client_key,
        "http_status": record.http_status,
        "count": record.count,
        "first_at": record.first_at,
        "last_at": record.last_at,
    }
    result: dict[str, Any] = storable(row)
    return result


def upsert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT, in the engine's dialect."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def insert_invocation_statement(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """Insert an invocation once: a replay (same id, same ``occurred_at``) does nothing.

    On PostgreSQL the conflict target is the partitioned table's primary key
    ``(id, occurred_at)``; on SQLite (a plain table) the unique ``id``.
    """
    stmt = upsert(dialect, invocation)
    if dialect == "postgresql":
        return stmt.on_conflict_do_nothing(
            index_elements=[invocation.c.id, invocation.c.occurred_at]
        )
    return stmt.on_conflict_do_nothing(index_elements=[invocation.c.id])


def check_dialect(engine: Engine) -> str:
    name = engine.dialect.name
    if name not in SUPPORTED_DIALECTS:
        raise ValueError(f"audit trail: unsupported database dialect {name!r}")
    return name


class UnknownCard(ValueError):
    """Feedback names a card no stored invocation issued (permanent: a dead letter)."""


class SqlAuditStore:
    """Writes invocations (with their cards) and feedback; reads which cards were issued."""

    def __init__(self, engine: Engine) -> None:
        dialect = check_dialect(engine)
        self.engine = engine
        self._insert_invocation = insert_invocation_statement(dialect)
        self._insert_cards = upsert(dialect, issued_card).on_conflict_do_nothing()
        self._insert_feedback = upsert(dialect, card_feedback).on_conflict_do_nothing()
        self._insert_refusals = upsert(dialect, refused_call).on_conflict_do_nothing()

    def ping(self) -> None:
        """Raises unless the database answers.

        A pooled connection that died with the last outage fails first; SQLAlchemy then
        discards the pool, and the second try opens a fresh connection.
        """
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Store ``records`` in order, in one transaction; a record stored before is skipped."""
        with self.engine.begin() as conn:
            for record in records:
                self._write(conn, record)

    def _write(self, conn: Connection, record: AuditRecord) -> None:
        if isinstance(record, InvocationRecord):
            conn.execute(self._insert_invocation, invocation_row(record))
            cards = card_rows(record)
            if cards:
                conn.execute(self._insert_cards, cards)
        elif isinstance(record, RefusalCount):
            conn.execute(self._insert_refusals, refusal_row(record))
        else:
            self._require_issued(conn, [record])
            conn.execute(self._insert_feedback, feedback_row(record))

    def _require_issued(self, conn: Connection, records: Sequence[FeedbackRecord]) -> None:
        """Feedback links to issued cards by uuid (no foreign key: a uuid may repeat)."""
        named = {record.card_uuid for record in records}
        issued = set(
            conn.scalars(
                select(issued_card.c.card_uuid).where(issued_card.c.card_uuid.in_(named)).distinct()
            )
        )
        if named - issued:
            raise UnknownCard(f"feedback names {len(named - issued)} card(s) never issued")

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Store feedback; returns rows new (an identical repeat is stored once).

        Raises ``FeedbackRefused`` when the audit refuses the content (a card it never
        issued), other ``SQLAlchemyError`` when the database cannot answer.
        """
        try:
            rows = [feedback_row(record) for record in records]
            with self.engine.begin() as conn:
                self._require_issued(conn, records)
                result = conn.execute(self._insert_feedback.returning(card_feedback.c.id), rows)
                return len(result.all())
        except UnknownCard as exc:
            raise FeedbackRefused(f"feedback refused: {exc}") from exc
        except Exception as exc:
            if classify(exc) is Failure.PERMANENT:
                raise FeedbackRefused(
                    f"feedback refused by the audit database ({describe(exc)})"
                ) from exc
            raise

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]:
        """Which of ``uuids`` were issued (by invocations already in the database); with
        ``issuer``, only those issued to that client."""
        wanted = {uuid for uuid in uuids if encodable(uuid)}  # no card id has a surrogate
        if not wanted:
            return set()
        query = select(issued_card.c.card_uuid).where(issued_card.c.card_uuid.in_(wanted))
        if issuer is not None:
            query = query.join(
                invocation,
                (invocation.c.id == issued_card.c.invocation_id)
                & (invocation.c.occurred_at == issued_card.c.invocation_occurred_at),
            ).where(invocation.c.client_iss == issuer)
        with self.engine.connect() as conn:
            return set(conn.scalars(query))
