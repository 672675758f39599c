"""``make run`` keeps its audit in SQLite: the same store and CLI must work there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.audit import migrate
from service.audit.cli import audit_group
from service.audit.db import make_engine, read_only
from service.audit.factory import create_audit_trail
from service.audit.records import FeedbackRefused
from service.audit.spooling import SpoolingAuditTrail
from service.config import Settings
from tests.integration import records


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'var' / 'audit.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def sqlite_trail(sqlite_url: str, tmp_path: Path) -> Iterator[SpoolingAuditTrail]:
    trail = create_audit_trail(
        Settings(database_url=sqlite_url, spool_dir=tmp_path / "spool"), start=False
    )
    yield trail
    trail.close()


def test_sqlite_store_and_show(sqlite_trail: SpoolingAuditTrail, sqlite_url: str) -> None:
    record = records.invocation(cards=2, patient="Patient/local")
    sqlite_trail.record_invocation(record)
    card = record.cards[1].uuid
    assert sqlite_trail.known_card_uuids([card, "nope"]) == {card}
    assert sqlite_trail.record_feedback([records.feedback(card, outcome="accepted")]) == 1
    assert sqlite_trail.record_feedback([records.feedback(card, outcome="accepted")]) == 0
    with pytest.raises(FeedbackRefused):
        sqlite_trail.record_feedback([records.feedback(str(uuid.uuid4()))])
    assert sqlite_trail.replay.remember_jti("iss", "j-1", records.in_minutes(5)) is True
    assert sqlite_trail.replay.remember_jti("iss", "j-1", records.in_minutes(5)) is False
    assert sqlite_trail.health() == {
        "database": "up",
        "spool_depth": 0,
        "replay_pending": 0,
        "database_errors": 0,
    }

    result = CliRunner().invoke(
        audit_group, ["show", "--format", "json"], env={"DATABASE_URL": sqlite_url}
    )
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)
    assert entry["id"] == str(record.id)
    assert entry["occurred_at"] == record.occurred_at.isoformat()
    assert [c["feedback"][0]["outcome"] for c in entry["cards"] if c["feedback"]] == ["accepted"]


def test_sqlite_auditor_connection_cannot_write(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(DBAPIError, match="readonly"), read_only(engine) as conn:
            conn.execute(text("DELETE FROM used_jti"))
        with engine.begin() as conn:  # the pooled connection is writable again afterwards
            conn.execute(text("DELETE FROM used_jti"))
    finally:
        engine.dispose()
