"""Whether the audit database is taking writes, shared by the audit trail and the replay store.

The state is as of the last attempt: a failed operation marks it down, the spool
drainer's successful replay marks it up again. Each failure is reported to
``AuditHooks.on_database_error`` (the app counts them in Prometheus) as it happens,
so nothing has to poll for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from service.audit.errors import describe

log = logging.getLogger(__name__)


def _ignore(_name: str) -> None:
    return None


@dataclass(frozen=True)
class AuditHooks:
    """Callbacks the app wires to its metrics; each is given a short, fixed name.

    ``on_database_error(operation)``: a database operation failed because the database
    was unavailable (operation: "write", "read", "feedback", "replay", "drain").
    ``on_dead_letter(kind)``: a record the database refused for good was moved to the
    dead-letter store (kind: "invocation", "feedback", "torn", "unreadable", ...).
    ``on_record_lost(kind)``: neither the database, the spool nor the dead-letter store
    could keep a record (the log line names its id).
    ``on_spool_full(kind)``: a record was dropped because the database was down and the
    spool had reached ``AUDIT_SPOOL_MAX_BYTES``.
    """

    on_database_error: Callable[[str], None] = _ignore
    on_dead_letter: Callable[[str], None] = _ignore
    on_record_lost: Callable[[str], None] = _ignore
    on_spool_full: Callable[[str], None] = _ignore


class DatabaseState:
    """Up/down of the audit database, as one user of it (``role``) last found it. Thread-safe.

    The audit writes and the replay store keep one each: a lock on ``invocation``
    (partition maintenance) makes writes time out while ``used_jti`` still answers.
    """

    def __init__(self, hooks: AuditHooks | None = None, role: str = "audit trail") -> None:
        self.hooks = hooks or AuditHooks()
        self.role = role
        self._up = True
        self._errors = 0
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self._up

    @property
    def errors(self) -> int:
        """Database operations that failed since this process started."""
        return self._errors

    def mark_down(self, operation: str, exc: BaseException) -> None:
        with self._lock:
            was_up, self._up = self._up, False
            self._errors += 1
        self.hooks.on_database_error(operation)
        if was_up:
            log.warning(
                "audit database unavailable to the %s (%s), working locally until it answers: %s",
                self.role,
                operation,
                describe(exc),
            )

    def mark_up(self) -> None:
        with self._lock:
            was_up, self._up = self._up, True
        if not was_up:
            log.warning("audit database reachable again for the %s", self.role)
