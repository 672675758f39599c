"""``create_audit_trail(settings)``: the audit adapter the app uses, assembled.

One engine (``DATABASE_URL``) serves the SQL store and the replay store; one
``DatabaseState`` tells both whether the database is taking writes; the spool lives
in ``AUDIT_SPOOL_DIR``. The returned trail owns them all (``close()`` releases them).
"""

from __future__ import annotations

from service.audit.db import make_engine
from service.audit.deadletter import DeadLetters
from service.audit.ledger import ReplayLedger
from service.audit.refusals import RefusalCounter
from service.audit.replay import JtiReplayStore
from service.audit.spool import Spool
from service.audit.spooling import SpoolingAuditTrail
from service.audit.sql import SqlAuditStore
from service.audit.state import AuditHooks, DatabaseState
from service.config import Settings


def create_audit_trail(
    settings: Settings, *, hooks: AuditHooks | None = None, start: bool = True
) -> SpoolingAuditTrail:
    """The trail (``trail.replay`` is the replay store); its drainer started unless told not."""
    engine = make_engine(
        settings.database_url,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout_ms=settings.audit_statement_timeout_ms,
        lock_timeout_ms=settings.audit_lock_timeout_ms,
    )
    state = DatabaseState(hooks)
    dead_letters = DeadLetters(settings.spool_dir, state.hooks.on_dead_letter)
    trail = SpoolingAuditTrail(
        SqlAuditStore(engine),
        Spool(settings.spool_dir, dead_letters, max_bytes=settings.spool_max_bytes),
        JtiReplayStore(
            engine, state, ReplayLedger(settings.spool_dir), fail_closed=settings.replay_fail_closed
        ),
        state,
        refusals=RefusalCounter(settings.audit_refusal_window_seconds),
        drain_interval=settings.spool_drain_interval,
    )
    if start:
        trail.start()
    return trail
