"""Audit trails for tests, assembled like ``factory.create_audit_trail`` but on any engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from service.audit.deadletter import DeadLetters
from service.audit.ledger import ReplayLedger
from service.audit.replay import JtiReplayStore
from service.audit.spool import Spool
from service.audit.spooling import SpoolingAuditTrail
from service.audit.sql import SqlAuditStore
from service.audit.state import AuditHooks, DatabaseState


def trail_on(
    engine: Engine, spool: Spool | Path, *, hooks: AuditHooks | None = None, **options: Any
) -> SpoolingAuditTrail:
    """A trail (not started) writing through ``engine``, spooling to ``spool``."""
    state = DatabaseState(hooks)
    if not isinstance(spool, Spool):
        spool = Spool(spool, DeadLetters(spool, state.hooks.on_dead_letter))
    return SpoolingAuditTrail(
        SqlAuditStore(engine),
        spool,
        JtiReplayStore(engine, DatabaseState(hooks, "replay store"), ReplayLedger(spool.directory)),
        state,
        **options,
    )
