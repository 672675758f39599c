"""``SqlAuditTrail``: the audit port (``records.AuditTrail``) on PostgreSQL or SQLite.

Request path: one short transaction per call, Core statements, no ORM session.
Outage path: when the database does not answer, records go to the local spool
(``spool.py``) and a background drainer replays them, in order, once the database
answers again. While the spool holds anything, new records queue behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.sql.dml import ReturningInsert

from service.audit import codec
from service.audit.db import make_engine
from service.audit.models import UtcDateTime, card_feedback, invocation, issued_card, used_jti
from service.audit.records import (
    AuditUnavailable,
    FeedbackRecord,
    FeedbackRefused,
    InvocationRecord,
)
from service.audit.spool import Spool, SpoolEntry, SpoolError
from service.config import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_refusal(exc: BaseException) -> bool:
    """True when the database refused *this record* (retrying would fail again).

    Anything else (connection lost, server gone, pool exhausted, schema missing) means
    the database is unavailable and the record should wait in the spool.
    """
    if isinstance(exc, IntegrityError | DataError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def without_nul(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold U+0000; clients can send it. Keep a visible mark."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def invocation_row(record: InvocationRecord) -> dict[str, Any]:
    row: dict[str, Any] = without_nul(codec.invocation_columns(record))
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
        "extra": record.extra,
    }
    result: dict[str, Any] = without_nul(row)
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


def remember_jti_statement(dialect: str) -> ReturningInsert[tuple[str]]:
    """Insert (iss, jti); on conflict take over only an expired row. Returns a row iff new."""
    stmt = upsert(dialect, used_jti).values(
        iss=bindparam("iss"), jti=bindparam("jti"), expires_at=bindparam("expires_at")
    )
    return stmt.on_conflict_do_update(
        index_elements=[used_jti.c.iss, used_jti.c.jti],
        set_={"expires_at": stmt.excluded.expires_at},
        where=used_jti.c.expires_at <= bindparam("now", type_=UtcDateTime()),
    ).returning(used_jti.c.jti)


class SqlAuditTrail:
    """Implements ``records.AuditTrail``. Thread-safe; one per process."""

    def __init__(
        self,
        engine: Engine,
        spool: Spool,
        *,
        drain_interval: float = 2.0,
        jti_prune_interval: float = 60.0,
        clock: Clock = utc_now,
    ) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"audit trail: unsupported database dialect {engine.dialect.name!r}")
        self._engine = engine
        self._spool = spool
        self._drain_interval = drain_interval
        self._jti_prune_interval = jti_prune_interval
        self._clock = clock
        dialect = engine.dialect.name
        self._insert_invocation = insert_invocation_statement(dialect)
        self._insert_cards = upsert(dialect, issued_card).on_conflict_do_nothing()
        self._insert_feedback = upsert(dialect, card_feedback).on_conflict_do_nothing()
        self._remember_jti = remember_jti_statement(dialect)
        self._db_up = True
        self._db_errors = 0  # database operations that failed, since this process started
        self._state_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._local_jtis: dict[tuple[str, str], datetime] = {}
        self._jti_lock = threading.Lock()
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        self._last_prune = 0.0

    # -- state -----------------------------------------------------------------------

    @property
    def database_up(self) -> bool:
        return self._db_up

    def _mark_down(self, exc: BaseException) -> None:
        with self._state_lock:
            was_up, self._db_up = self._db_up, False
            self._db_errors += 1
        if was_up:
            log.warning("audit database unavailable, spooling records locally: %s", exc)

    def _mark_up(self) -> None:
        with self._state_lock:
            was_up, self._db_up = self._db_up, True
        if not was_up:
            log.warning("audit database reachable again")

    # -- invocations -----------------------------------------------------------------

    def record_invocation(self, record: InvocationRecord) -> None:
        """Persist; never raises. Spools to local disk when the database is down."""
        entry = SpoolEntry(record)
        try:
            if not self._db_up:
                self._spool.append(entry)
                return
            if self._spool.append_if_pending(entry):
                return
            try:
                with self._engine.begin() as conn:
                    self._write(conn, entry)
                return
            except SQLAlchemyError as exc:
                if is_refusal(exc):
                    self._spool.reject(entry, f"database refused invocation: {exc}")
                    return
                self._mark_down(exc)
            self._spool.append(entry)
        except Exception:
            # disk full or worse: the log line is the last copy of the record
            log.exception(
                "AUDIT RECORD LOST (database and spool both failed): %s",
                entry.to_line().decode("utf-8", "replace"),
            )

    def _write(self, conn: Connection, entry: SpoolEntry) -> None:
        record = entry.record
        if isinstance(record, InvocationRecord):
            conn.execute(self._insert_invocation, invocation_row(record))
            cards = card_rows(record)
            if cards:
                conn.execute(self._insert_cards, cards)
        else:
            conn.execute(self._insert_feedback, feedback_row(record))

    # -- feedback --------------------------------------------------------------------

    def known_card_uuids(self, uuids: Iterable[str]) -> set[str]:
        """Which of these card uuids were issued, from the spool first, then the database."""
        wanted = set(uuids)
        found = self._spool.card_uuids(wanted)
        missing = wanted - found
        if not missing:
            return found
        if not self._db_up:
            raise AuditUnavailable(
                f"audit database is down and the spool does not know card(s) {sorted(missing)}"
            )
        query = select(issued_card.c.card_uuid).where(issued_card.c.card_uuid.in_(missing))
        try:
            with self._engine.connect() as conn:
                found.update(conn.scalars(query))
        except SQLAlchemyError as exc:
            if not is_refusal(exc):
                self._mark_down(exc)
            raise AuditUnavailable(
                f"audit database cannot say which cards were issued: {exc}"
            ) from exc
        return found

    def record_feedback(self, records: Sequence[FeedbackRecord]) -> int:
        """Persist feedback; an identical repeat is stored once. Returns rows new.

        During an outage the feedback is spooled and the count is of records accepted
        into the spool (identical repeats are dropped at replay).
        Raises ``FeedbackRefused`` if the database refuses the content (unknown card),
        ``AuditUnavailable`` if neither the database nor the spool can take it.
        """
        distinct: dict[str, FeedbackRecord] = {}
        for record in records:
            distinct.setdefault(codec.feedback_fingerprint(record), record)
        entries = [SpoolEntry(record) for record in distinct.values()]
        if not entries:
            return 0
        if self._db_up and not self._spool.depth():
            rows = [feedback_row(entry.record) for entry in entries]  # type: ignore[arg-type]
            try:
                with self._engine.begin() as conn:
                    result = conn.execute(self._insert_feedback.returning(card_feedback.c.id), rows)
                    return len(result.all())
            except SQLAlchemyError as exc:
                if is_refusal(exc):
                    raise FeedbackRefused(f"feedback refused by the audit database: {exc}") from exc
                self._mark_down(exc)
        try:
            for entry in entries:
                self._spool.append(entry)
        except SpoolError as exc:
            raise AuditUnavailable(f"audit database down and spool failed: {exc}") from exc
        return len(entries)

    # -- replay protection -------------------------------------------------------------

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen before it expires; False on replay.

        Held in PostgreSQL so it holds across pods. While the database is down, a
        process-local memory stands in (replays to *this* process are still caught).
        """
        now = self._clock()
        key = (iss, jti)
        with self._jti_lock:
            seen_until = self._local_jtis.get(key)
            if seen_until is not None and seen_until > now:
                return False
        if self._db_up:
            params = {"iss": iss, "jti": jti, "expires_at": expires_at, "now": now}
            try:
                with self._engine.begin() as conn:
                    return conn.execute(self._remember_jti, params).first() is not None
            except SQLAlchemyError as exc:
                if is_refusal(exc):
                    raise ValueError(f"cannot remember jti {jti!r} of {iss!r}: {exc}") from exc
                self._mark_down(exc)
        with self._jti_lock:
            seen_until = self._local_jtis.get(key)
            if seen_until is not None and seen_until > now:
                return False
            self._local_jtis[key] = expires_at
            return True

    def prune_expired_jtis(self) -> int:
        """Forget jtis whose tokens have expired (they are refused by ``exp`` anyway)."""
        now = self._clock()
        with self._jti_lock:
            for key in [k for k, until in self._local_jtis.items() if until <= now]:
                del self._local_jtis[key]
        with self._engine.begin() as conn:
            result = conn.execute(delete(used_jti).where(used_jti.c.expires_at <= now))
            return int(result.rowcount)

    # -- health and the drainer --------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """{"database": "up"|"down", "spool_depth": int, "database_errors": int}.

        The state is as of the last attempt; ``database_errors`` counts failed database
        operations (writes, reads, probes) since this process started.
        """
        return {
            "database": "up" if self._db_up else "down",
            "spool_depth": self._spool.depth(),
            "database_errors": self._db_errors,
        }

    def start(self) -> None:
        """Start the background drainer (call once, after any fork)."""
        if self._drainer is not None:
            return
        self._drainer = threading.Thread(
            target=self._drain_forever, name="audit-spool-drainer", daemon=True
        )
        self._drainer.start()

    def _drain_forever(self) -> None:
        while True:
            try:
                self.drain_once()
            except Exception:
                log.exception("audit spool drainer failed; retrying")
            if self._stop.wait(self._drain_interval):
                return

    def drain_once(self, max_rounds: int = 20) -> int:
        """Probe the database; if it answers, replay the spool. Returns records replayed."""
        with self._drain_lock:
            replayed = 0
            try:
                with self._engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                for _ in range(max_rounds):
                    done = self._spool.drain(self._store_batch)
                    replayed += done
                    if not done:
                        break
                self._mark_up()
            except SQLAlchemyError as exc:
                self._mark_down(exc)
                return replayed
            self._maybe_prune()
            return replayed

    def _store_batch(self, entries: Sequence[SpoolEntry]) -> None:
        try:
            with self._engine.begin() as conn:
                for entry in entries:
                    self._write(conn, entry)
            return
        except SQLAlchemyError as exc:
            if not is_refusal(exc):
                raise
        for entry in entries:  # find the refused one(s); the rest go in
            try:
                with self._engine.begin() as conn:
                    self._write(conn, entry)
            except SQLAlchemyError as exc:
                if not is_refusal(exc):
                    raise
                self._spool.reject(entry, f"database refused {entry.kind}: {exc}")

    def _maybe_prune(self) -> None:
        now = self._clock().timestamp()
        if now - self._last_prune < self._jti_prune_interval:
            return
        self._last_prune = now
        try:
            self.prune_expired_jtis()
        except SQLAlchemyError as exc:
            log.warning("could not prune expired jtis: %s", exc)

    def close(self) -> None:
        """Stop the drainer, try a last replay if the database answers, release files."""
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join(timeout=30)
        if self._db_up and self._spool.depth():
            self.drain_once()
        self._spool.close()
        self._engine.dispose()


def create_audit_trail(settings: Settings, *, start: bool = True) -> SqlAuditTrail:
    """The audit trail the app uses: engine from DATABASE_URL, spool in AUDIT_SPOOL_DIR."""
    engine = make_engine(settings.database_url, connect_timeout=settings.db_connect_timeout)
    trail = SqlAuditTrail(
        engine, Spool(settings.spool_dir), drain_interval=settings.spool_drain_interval
    )
    if start:
        trail.start()
    return trail
