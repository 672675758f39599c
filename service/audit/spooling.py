"""``SpoolingAuditTrail``: the audit port (``records.AuditTrail``) that keeps answering.

Request path: the SQL store writes the record in one short transaction (on PostgreSQL a
hook call's record is one statement, with the settlement of its ``jti`` when it has one:
``oneshot.py``). Outage path: when the database does not answer, records go to the local
spool (``spool.py``) and a background drainer replays them, in order, once the database
answers again. While the spool holds anything, new records queue behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from service.audit import codec
from service.audit.errors import Failure, classify, describe, sqlstate
from service.audit.oneshot import OneStatementWriter
from service.audit.records import (
    AuditRecord,
    AuditUnavailable,
    FeedbackRecord,
    InvocationRecord,
    JtiClaim,
)
from service.audit.refusals import RefusalCounter
from service.audit.replay import JtiReplayStore
from service.audit.spool import Spool, SpoolEntry, SpoolError, SpoolFull
from service.audit.sql import SqlAuditStore
from service.audit.state import DatabaseState

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SpoolingAuditTrail:
    """Implements ``records.ClaimingAuditTrail``. Thread-safe; one per process."""

    def __init__(
        self,
        store: SqlAuditStore,
        spool: Spool,
        replay: JtiReplayStore,
        state: DatabaseState,
        *,
        refusals: RefusalCounter | None = None,
        writer: OneStatementWriter | None = None,
        drain_interval: float = 2.0,
        jti_prune_interval: float = 60.0,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.replay = replay
        self.state = state
        self._spool = spool
        self._refusals = refusals or RefusalCounter()
        self._writer = writer
        self._full_lock = threading.Lock()
        self._dropped = 0  # records dropped since the spool reached its cap
        self._drain_interval = drain_interval
        self._jti_prune_interval = jti_prune_interval
        self._clock = clock
        self._drain_lock = threading.Lock()
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        self._last_prune = 0.0

    @property
    def database_up(self) -> bool:
        return self.state.up

    # -- invocations -----------------------------------------------------------------

    def record_invocation(self, record: InvocationRecord) -> None:
        """Persist; never raises. Spools to local disk when the database is down.

        A record the database refuses for good goes to the dead-letter store; the
        database stays "up" and the next record is written as usual.
        """
        self._record(record)

    def record_claimed(self, record: InvocationRecord, claim: JtiClaim) -> bool:
        """Settle the call's ``jti`` claim and persist its record; False on a replay (then
        nothing is recorded: the caller answers 401 and counts a refusal).

        One statement and one commit when PostgreSQL takes writes and nothing waits in
        the spool. Otherwise, or when that statement fails, the way of a call without
        the statement: the claim settled on its own (``JtiReplayStore.settle_jti``: pending
        in the ledger during an outage, or ``ReplayUnavailable`` when fail-closed), then
        the record written, dead-lettered or spooled (``record_invocation``).
        """
        if self._writer is not None and self._one_statement_open(claim):
            try:
                return self._writer.claimed_invocation(record, claim)
            except SQLAlchemyError as exc:
                if classify(exc) is Failure.TRANSIENT and sqlstate(exc) is None:
                    return self._unreachable(record, claim, exc)
                # the server refused the statement: nothing of it was committed
        if not self.replay.settle_jti(claim):
            return False
        self._record(record)
        return True

    def _one_statement_open(self, claim: JtiClaim) -> bool:
        return (
            claim.ask_database
            and self.state.up
            and self.replay.state.up
            and not self._spool.depth()
        )

    def _unreachable(self, record: InvocationRecord, claim: JtiClaim, exc: SQLAlchemyError) -> bool:
        """The connection failed mid-statement: PostgreSQL may or may not have committed it.

        Either way the call is accepted as in an outage: the claim pending in the ledger
        (``sync_pending`` finds it held if the statement did commit), the record spooled
        (its replay is keyed by id: stored once). Fail-closed raises instead.
        """
        self.state.mark_down("write", exc)
        accepted = self.replay.settle_failed(claim, exc)
        self._record(record)
        return accepted

    def record_refusal(self, client_key: str, status: int, at: datetime) -> None:
        """Count one call refused before authentication (a 401); never raises.

        Counted in memory per (client, status, window); the drainer writes one row per
        window once it has closed (``flush_refusals``).
        """
        try:
            self._refusals.count(client_key, status, at)
        except Exception as exc:
            log.error("could not count a refused call: %s", describe(exc))

    def flush_refusals(self, *, everything: bool = False) -> int:
        """Write the counts of the windows that have closed (all, when ``everything``)."""
        counts = self._refusals.closed(None if everything else self._clock())
        for count in counts:
            self._record(count)
        return len(counts)

    def _record(self, record: AuditRecord) -> None:
        entry = SpoolEntry(record)
        try:
            if self._write_or_spool(entry):
                self._spool_has_room()
        except SpoolFull as exc:
            self._drop(entry, exc)
        except Exception as exc:
            self._keep_somehow(entry, exc)

    def _write_or_spool(self, entry: SpoolEntry) -> bool:
        """Write (or dead-letter) the record, or spool it; True when it was spooled."""
        if not self.state.up:
            self._spool.append(entry)
            return True
        if self._spool.append_if_pending(entry):
            return True
        try:
            if self._writer is not None and isinstance(entry.record, InvocationRecord):
                self._writer.invocation(entry.record)  # one statement, one commit
            else:
                self.store.write([entry.record])
            return False
        except Exception as exc:
            if classify(exc) is Failure.PERMANENT:
                self._dead_letter(entry, exc)
                return False
            self.state.mark_down("write", exc)
        self._spool.append(entry)
        return True

    def _drop(self, entry: SpoolEntry, exc: SpoolFull) -> None:
        """The database is down and the spool at its cap: the record is lost, and said so once."""
        with self._full_lock:
            first, self._dropped = not self._dropped, self._dropped + 1
        if first:
            log.error("AUDIT SPOOL FULL, records are dropped until it drains: %s", exc)
        self.state.hooks.on_spool_full(entry.kind)

    def _spool_has_room(self) -> None:
        if not self._dropped:
            return
        with self._full_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning("audit spool below its cap again; %d record(s) were dropped", dropped)

    def _dead_letter(self, entry: SpoolEntry, exc: BaseException) -> None:
        self._spool.reject(entry, f"database refused {entry.kind}: {describe(exc)}")

    def _keep_somehow(self, entry: SpoolEntry, exc: BaseException) -> None:
        """The spool failed (disk full or worse): the dead-letter file, else count it lost."""
        try:
            self._spool.reject(entry, f"spool failed: {describe(exc)}")
        except Exception as last:
            log.error(  # the id only: a record never goes to a log
                "AUDIT RECORD LOST: %s %s (database, spool and dead-letter store failed: %s)",
                entry.kind,
                entry.record.id,
                describe(last),
            )
            self.state.hooks.on_record_lost(entry.kind)

    # -- feedback --------------------------------------------------------------------

    def known_card_uuids(self, uuids: Iterable[str], issuer: str | None = None) -> set[str]:
        """Which of these card uuids were issued (with ``issuer``: to that client), from the
        spool first, then the database."""
        wanted = set(uuids)
        found = self._spool.card_uuids(wanted, issuer)
        missing = wanted - found
        if not missing:
            return found
        if not self.state.up:
            raise AuditUnavailable(
                f"audit database is down and the spool does not know card(s) {sorted(missing)}"
            )
        try:
            found.update(self.store.known_card_uuids(missing, issuer))
        except SQLAlchemyError as exc:
            if classify(exc) is Failure.TRANSIENT:
                self.state.mark_down("read", exc)
            raise AuditUnavailable(
                f"audit database cannot say which cards were issued: {describe(exc)}"
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
        if not distinct:
            return 0
        if self.state.up and not self._spool.depth():
            try:
                return self.store.write_feedback(list(distinct.values()))
            except SQLAlchemyError as exc:
                self.state.mark_down("feedback", exc)
        try:
            for record in distinct.values():
                self._spool.append(SpoolEntry(record))
        except SpoolError as exc:
            raise AuditUnavailable(f"audit database down and spool failed: {exc}") from exc
        return len(distinct)

    # -- health and the drainer --------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """{"database": "up"|"down", "spool_depth", "replay_pending", "database_errors"}.

        The state is as of the last attempt; ``replay_pending`` counts jtis this pod
        accepted while PostgreSQL was down and has not yet written there;
        ``database_errors`` counts failed database operations since this process started.
        """
        return {
            "database": "up" if self.state.up else "down",
            "spool_depth": self._spool.depth(),
            "replay_pending": self.replay.pending_count(),
            "database_errors": self.state.errors + self.replay.state.errors,
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
                self.flush_refusals()
                self.drain_once()
            except Exception as exc:  # no traceback: its text could quote a record
                log.error("audit spool drainer failed, retrying: %s", describe(exc))
            if self._stop.wait(self._drain_interval):
                return

    def drain_once(self, max_rounds: int = 20) -> int:
        """Probe the database; if it answers, write the jtis accepted meanwhile, then replay
        the spool; only then is the database "up" again. Returns records replayed."""
        with self._drain_lock:
            replayed = 0
            try:
                self.store.ping()
                self.replay.sync_pending()
                self.replay.state.mark_up()
                for _ in range(max_rounds):
                    done = self._spool.drain(self._store_batch)
                    replayed += done
                    if not done:
                        break
                self.state.mark_up()
            except SQLAlchemyError as exc:
                self.state.mark_down("drain", exc)
                return replayed
            self._maybe_prune()
            return replayed

    def _store_batch(self, entries: Sequence[SpoolEntry]) -> None:
        """Store a batch; a record refused for good is dead-lettered, the rest go in.

        Raises (the batch stays spooled) only when the database is unavailable.
        """
        try:
            self.store.write([entry.record for entry in entries])
            return
        except Exception as exc:
            if classify(exc) is Failure.TRANSIENT:
                raise
        for entry in entries:  # find the refused one(s)
            try:
                self.store.write([entry.record])
            except Exception as exc:
                if classify(exc) is Failure.TRANSIENT:
                    raise
                self._dead_letter(entry, exc)

    def _maybe_prune(self) -> None:
        now = self._clock().timestamp()
        if now - self._last_prune < self._jti_prune_interval:
            return
        self._last_prune = now
        try:
            self.replay.prune_expired()
        except SQLAlchemyError as exc:
            log.warning("could not prune expired jtis: %s", describe(exc))

    def close(self) -> None:
        """Stop the drainer, try a last replay if the database answers, release files."""
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join(timeout=30)
        self.flush_refusals(everything=True)
        if self.state.up and self._spool.depth():
            self.drain_once()
        self._spool.close()
        self.replay.close()
        self.store.engine.dispose()
