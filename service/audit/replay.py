"""``JtiReplayStore``: CDS Hooks 2.0 replay protection, on its own.

Each (iss, jti) is accepted once before its token expires. Held in the shared
database (``used_jti``) so it holds across pods. While the database is down (as the
shared ``DatabaseState`` says), a process-local memory stands in: replays to *this*
process are still caught.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import ReturningInsert

from service.audit.codec import bounded_key
from service.audit.errors import Failure, classify, describe
from service.audit.models import UtcDateTime, used_jti
from service.audit.sql import check_dialect, upsert
from service.audit.state import DatabaseState

Clock = Callable[[], datetime]


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
    """Implements ``records.ReplayStore``. Thread-safe; one per process."""

    def __init__(self, engine: Engine, state: DatabaseState, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._state = state
        self._clock = clock
        self._remember = remember_jti_statement(check_dialect(engine))
        self._local: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def remember_jti(self, iss: str, jti: str, expires_at: datetime) -> bool:
        """True the first time (iss, jti) is seen before it expires; False on replay.

        Raises ``ValueError`` when the database refuses the value itself.
        """
        now = self._clock()
        jti = bounded_key(jti)  # the primary key stays small whatever the client sent
        key = (iss, jti)
        with self._lock:
            seen_until = self._local.get(key)
            if seen_until is not None and seen_until > now:
                return False
        if self._state.up:
            params = {"iss": iss, "jti": jti, "expires_at": expires_at, "now": now}
            try:
                with self._engine.begin() as conn:
                    return conn.execute(self._remember, params).first() is not None
            except SQLAlchemyError as exc:
                if classify(exc) is Failure.PERMANENT:
                    raise ValueError(f"the replay store refused a jti: {describe(exc)}") from exc
                self._state.mark_down("replay", exc)
        with self._lock:
            seen_until = self._local.get(key)
            if seen_until is not None and seen_until > now:
                return False
            self._local[key] = expires_at
            return True

    def prune_expired(self) -> int:
        """Forget jtis whose tokens have expired (they are refused by ``exp`` anyway)."""
        now = self._clock()
        with self._lock:
            for key in [k for k, until in self._local.items() if until <= now]:
                del self._local[key]
        with self._engine.begin() as conn:
            result = conn.execute(delete(used_jti).where(used_jti.c.expires_at <= now))
            return int(result.rowcount)
