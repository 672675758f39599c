"""Issue 11 finding 9: no SQL parameter and no record in any log line, ids only.

Real PostgreSQL; every failure path of the audit trail is walked with a record whose
patient reference, evidence and error text carry a marker, and every log record of
every logger is captured (message and traceback).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from service.audit.records import InvocationRecord
from service.audit.spooling import SpoolingAuditTrail
from testkit.pg import DatabaseFactory
from tests.integration import records
from tests.integration.trails import trail_on

pytestmark = pytest.mark.integration


def marked(marker: str, **overrides: object) -> InvocationRecord:
    record = records.invocation(
        cards=1, patient=f"Patient/{marker}", error_detail=f"detail {marker}", **overrides
    )
    rule = record.fired_rules[0]
    evidence = ({"linkId": "saddle-numbness", "answer": marker},)
    return InvocationRecord(
        **{**record.__dict__, "fired_rules": (rule.__class__(rule.rule_id, "1", evidence),)}
    )


def rename(url: str, old: str, new: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
    finally:
        engine.dispose()


def test_failures_are_logged_with_ids_never_with_values(
    make_database: DatabaseFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = f"PHI-{uuid.uuid4().hex}"
    url = make_database()
    spool_dir = tmp_path / "spool"
    trail: SpoolingAuditTrail = trail_on(create_engine(url), spool_dir)
    try:
        # an outage in the middle of a statement (schema gone): the error carries the SQL
        rename(url, "invocation", "invocation_away")
        outage = marked(marker)
        trail.record_invocation(outage)
        assert trail.health()["database"] == "down"
        rename(url, "invocation_away", "invocation")
        assert trail.drain_once() == 1

        # refused for good: dead-lettered, logged by id
        refused = marked(marker, occurred_at=datetime(2025, 1, 1, 12, 0))  # naive time
        trail.record_invocation(refused)

        # the spool fails too: the dead-letter file keeps it
        rename(url, "invocation", "invocation_away")
        trail._spool.close()  # as if the disk had failed
        kept = marked(marker)
        trail.record_invocation(kept)
        # and the dead-letter file cannot be written either: lost, said by id only
        (spool_dir / "dead-letters.jsonl").unlink()
        (spool_dir / "dead-letters.jsonl").mkdir()
        lost = marked(marker)
        trail.record_invocation(lost)
    finally:
        trail.close()

    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert marker not in logged
    assert "[parameters:" not in logged and "INSERT INTO" not in logged
    assert str(refused.id) in logged and str(kept.id) in logged
    assert f"AUDIT RECORD LOST: invocation {lost.id}" in logged
