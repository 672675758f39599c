"""``JtiReplayStore``: CDS Hooks 2.0 replay protection, on its own.

Each (iss, jti) is accepted once before its token expires:

* within a pod, always: every accepted jti is first claimed in the pod's
  ``ReplayLedger`` (a SQLite file beside the spool, shared by the pod's workers),
  database outage or not;
* across pods, while PostgreSQL answers: the claim is then made in ``used_jti``.

While PostgreSQL is down (as the store's own ``DatabaseState`` says) a claim stays
*pending* in the ledger; ``sync_pending`` (the drainer calls it first when the
database answers again) writes every pending claim to PostgreSQL. The window left:
two pods accepting the same token during one outage. ``fail_closed`` closes it by
refusing (``ReplayUnavailable``, a 503) while PostgreSQL cannot be asked.

The check comes in two halves: ``claim_jti`` (the pod ledger: a replay within the pod
is refused there, before any work) and ``settle_jti`` (PostgreSQL). ``remember_jti``
does both at once; a hook call settles its claim in the same statement as its audit
record instead (``SpoolingAuditTrail.record_claimed``, ``oneshot.py``): one round trip
and one commit per call, and still before any card leaves the server.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import ReturningInsert

from service.audit.codec import bounded_key
from service.audit.errors import Failure, classify, describe
from service.audit.ledger import LedgerError, ReplayLedger
from service.audit.models import UtcDateTime, used_jti
from service.audit.records import JtiClaim, ReplayUnavailable
from service.audit.sql import check_dialect, upsert
from service.audit.state import DatabaseState

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SYNC_LOCK_FILE = "replay.sync.lock"


def utc_now() -> datetime:
    return datetime.now(UTC)


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


class JtiReplayStore:
    """Implements ``records.DeferredReplayStore``. Thread-safe; one per process."""

    def __init__(
        self,
        engine: Engine,
        state: DatabaseState,
        ledger: ReplayLedger,
        *,
        fail_closed: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self.state = state
        self._ledger = ledger
        self._fail_closed = fail_closed
        self._clock = clock
        self._remember = remember_jti_statement(check_dialect(engine))
        self._sync_lock_path = ledger.path.parent / SYNC_LOCK_FILE

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen before it expires; False on replay.

        Raises ``ReplayUnavailable`` when it cannot answer safely (fail-closed and
        PostgreSQL down, or neither the ledger nor PostgreSQL answers), ``ValueError``
        when the database refuses the value itself.
        """
        claim = self.claim_jti(iss, jti, expires_at)
        return claim is not None and self.settle_jti(claim)

    def claim_jti(self, iss: str, jti: str, expires_at: datetime) -> JtiClaim | None:
        """Claim (iss, jti) in the pod ledger: None when the pod holds it already (a replay).

        The claim is pending at once when PostgreSQL is known to be down; otherwise it
        waits for ``settle_jti`` (or the audit write that settles it in the same statement).
        """
        now = self._clock()
        jti = bounded_key(jti)  # the primary key stays small whatever the client sent
        ask_database = self.state.up
        try:
            if not self._ledger.claim(iss, jti, expires_at, now, pending=not ask_database):
                return None
            held = True
        except LedgerError as exc:
            log.error("replay ledger unavailable, asking PostgreSQL alone: %s", exc)
            held = False
        return JtiClaim(iss, jti, expires_at, now, ask_database, held)

    def settle_jti(self, claim: JtiClaim) -> bool:
        """Settle a claim in PostgreSQL on its own (or leave it pending when it is down)."""
        if claim.ask_database:
            params = {
                "iss": claim.iss,
                "jti": claim.jti,
                "expires_at": claim.expires_at,
                "now": claim.at,
            }
            try:
                with self._engine.begin() as conn:
                    return conn.execute(self._remember, params).first() is not None
            except SQLAlchemyError as exc:
                return self.settle_failed(claim, exc)
        return self._accepted_pending(claim, mark=False)

    def settle_failed(self, claim: JtiClaim, exc: SQLAlchemyError) -> bool:
        """PostgreSQL failed to settle ``claim``: refused for good (ValueError), or pending
        in the ledger until it answers again (``ReplayUnavailable`` when fail-closed)."""
        if classify(exc) is Failure.PERMANENT:
            self._undo(claim)
            raise ValueError(f"the replay store refused a jti: {describe(exc)}") from exc
        self.state.mark_down("replay", exc)
        return self._accepted_pending(claim, mark=True)

    def _accepted_pending(self, claim: JtiClaim, *, mark: bool) -> bool:
        if self._fail_closed or not claim.held_locally:
            self._undo(claim)
            raise ReplayUnavailable("the shared replay store (PostgreSQL) is unavailable")
        if mark:
            self._mark_pending(claim.iss, claim.jti)
        return True  # pending in the ledger until PostgreSQL answers

    def _mark_pending(self, iss: str, jti: str) -> None:
        try:
            self._ledger.mark_pending(iss, jti)
        except LedgerError as exc:
            log.error("replay ledger: a jti accepted now may never reach PostgreSQL: %s", exc)

    def _undo(self, claim: JtiClaim) -> None:
        if not claim.held_locally:
            return
        try:
            self._ledger.forget(claim.iss, claim.jti)
        except LedgerError as exc:
            log.error("replay ledger: cannot release a refused claim: %s", exc)

    def pending_count(self) -> int:
        """Claims accepted while PostgreSQL was down, not yet written there."""
        try:
            return self._ledger.pending_count()
        except LedgerError:
            return 0

    def sync_pending(self) -> int:
        """Write every pending claim to PostgreSQL; returns how many. Raises if it is down.

        One worker of the pod at a time (the others skip); the claims are marked synced
        only after PostgreSQL committed them, so a crash in between repeats the work.
        """
        synced = 0
        try:
            lock = os.open(self._sync_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return 0  # another worker of this pod is syncing
                while batch := self._ledger.pending():
                    taken_elsewhere = self._push(batch)
                    self._ledger.settle([(iss, jti) for iss, jti, _ in batch])
                    synced += len(batch)
                    if taken_elsewhere:
                        log.warning(
                            "%d jti(s) accepted here during the outage were already in "
                            "PostgreSQL (accepted by another pod meanwhile, or written there "
                            "before a connection or a sync was interrupted)",
                            taken_elsewhere,
                        )
            finally:
                os.close(lock)
        except OSError as exc:  # the ledger or its lock file: never blocks the spool
            log.error("replay ledger: cannot sync pending jtis: %s", exc)
        return synced

    def _push(self, batch: list[tuple[str, str, float]]) -> int:
        """Insert the claims; returns how many PostgreSQL already held."""
        now = self._clock()
        held = 0
        with self._engine.begin() as conn:
            for iss, jti, until in batch:
                params = {
                    "iss": iss,
                    "jti": jti,
                    "expires_at": datetime.fromtimestamp(until, UTC),
                    "now": now,
                }
                if conn.execute(self._remember, params).first() is None:
                    held += 1
        return held

    def prune_expired(self) -> int:
        """Forget jtis whose tokens have expired (they are refused by ``exp`` anyway)."""
        now = self._clock()
        try:
            self._ledger.prune(now)
        except LedgerError as exc:
            log.error("replay ledger: cannot prune: %s", exc)
        with self._engine.begin() as conn:
            result = conn.execute(delete(used_jti).where(used_jti.c.expires_at <= now))
            return int(result.rowcount)

    def close(self) -> None:
        self._ledger.close()
