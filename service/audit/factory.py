"""``create_audit_trail(settings)``: the audit adapter the app uses, assembled.

One engine (``DATABASE_URL``) serves the SQL store, the replay store and, on
PostgreSQL, the one-statement writes of the hot path (``oneshot.py``); the spool lives
in ``AUDIT_SPOOL_DIR``. The returned trail owns them all (``close()`` releases them).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from service.audit.db import make_engine
from service.audit.deadletter import DeadLetters
from service.audit.ledger import ReplayLedger
from service.audit.oneshot import OneStatementWriter
from service.audit.refusals import RefusalCounter
from service.audit.replay import JtiReplayStore
from service.audit.spool import Spool, SpoolError
from service.audit.spooling import SpoolingAuditTrail
from service.audit.sql import SqlAuditStore
from service.audit.state import AuditHooks, DatabaseState
from service.config import Settings


def check_spool_dir(spool_dir: Path) -> None:
    """Fail before a server binds if AUDIT_SPOOL_DIR cannot hold the spool and the ledger.

    Creates the directory if needed, writes, fsyncs and removes a probe file, and opens
    the replay ledger. Raises ``SpoolError`` (an ``OSError``) saying what is wrong.
    """
    probe = spool_dir / f".write-check-{uuid.uuid4().hex}"
    try:
        spool_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"backpain-cds\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
        ReplayLedger(spool_dir).close()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpoolError(f"AUDIT_SPOOL_DIR {spool_dir} is not writable: {reason}") from exc


def create_audit_trail(
    settings: Settings, *, hooks: AuditHooks | None = None, start: bool = True
) -> SpoolingAuditTrail:
    """The trail (``trail.replay`` is the replay store); its drainer started unless told not.

    The trail and the replay store share the engine and the hooks, each keeps its own
    ``DatabaseState`` (see ``state.py``).
    """
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
            engine,
            DatabaseState(state.hooks, role="replay store"),
            ReplayLedger(settings.spool_dir),
            fail_closed=settings.replay_fail_closed,
        ),
        state,
        refusals=RefusalCounter(settings.audit_refusal_window_seconds),
        writer=OneStatementWriter(engine) if engine.dialect.name == "postgresql" else None,
        drain_interval=settings.spool_drain_interval,
    )
    if start:
        trail.start()
    return trail
