"""Issue 11 finding 3: a locked audit table must not stall calls, and health must say so.

A real ``LOCK TABLE invocation`` (what partition maintenance and ``archive-month`` take)
is held in another connection for as long as the test wants. The write must give up
on its own (lock timeout), spool the record and answer; health says "down" while writes
time out; once the lock goes, the drainer stores the record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from service.audit.factory import create_audit_trail
from service.audit.models import invocation
from service.config import Settings
from testkit.pg import DatabaseFactory
from tests.integration import records

pytestmark = pytest.mark.integration

#: far longer than any timeout under test: if the call is still running after this,
#: it was waiting for the lock (the lock is only released after the check)
BOUND_SECONDS = 30


@contextmanager
def table_locked(url: str, table: str) -> Iterator[None]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.begin()
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def bounded(action: object, *args: object) -> threading.Thread:
    """Run ``action`` in a thread and wait for it at most ``BOUND_SECONDS``."""
    thread = threading.Thread(target=action, args=args)  # type: ignore[arg-type]
    thread.start()
    thread.join(BOUND_SECONDS)
    return thread


def test_a_locked_table_spools_answers_and_health_says_so(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    url = make_database()
    trail = create_audit_trail(
        Settings(database_url=url, spool_dir=tmp_path / "spool"), start=False
    )
    record = records.invocation(cards=1)
    try:
        with table_locked(url, "invocation"):
            call = bounded(trail.record_invocation, record)
            call_returned = not call.is_alive()
            health = trail.health()
            # ``SELECT 1`` answers under the lock; only a write tells the drainer the truth
            drain = bounded(trail.drain_once)
            drain_returned = not drain.is_alive()
            health_after_drain = trail.health()
        call.join(BOUND_SECONDS)  # let them finish either way
        drain.join(BOUND_SECONDS)
        assert call_returned, "record_invocation waited for the table lock"
        assert drain_returned, "the drainer waited for the table lock"
        assert (health["database"], health["spool_depth"]) == ("down", 1)
        assert (health_after_drain["database"], health_after_drain["spool_depth"]) == ("down", 1)

        assert trail.drain_once() == 1  # the lock is gone
        assert trail.health()["database"] == "up"
    finally:
        trail.close()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(invocation.c.id).where(invocation.c.id == record.id))
    finally:
        engine.dispose()


def test_the_timeouts_are_settings() -> None:
    settings = Settings.from_env(
        {"AUDIT_STATEMENT_TIMEOUT_MS": "750", "AUDIT_LOCK_TIMEOUT_MS": "50"}
    )
    assert (settings.audit_statement_timeout_ms, settings.audit_lock_timeout_ms) == (750, 50)
    assert Settings.from_env({}).audit_lock_timeout_ms == 200


def test_replay_protection_still_asks_postgres_while_invocation_is_locked(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    """Partition maintenance locks ``invocation``, not ``used_jti``: a lock must neither open
    a window between pods nor make a fail-closed pod refuse every authenticated call."""
    url = make_database()
    pods = [
        create_audit_trail(
            Settings(database_url=url, spool_dir=tmp_path / name, replay_fail_closed=strict),
            start=False,
        )
        for name, strict in (("a", False), ("b", True))
    ]
    expires = records.in_minutes(5)
    try:
        with table_locked(url, "invocation"):
            for pod in pods:
                bounded(pod.record_invocation, records.invocation())
                assert pod.health()["database"] == "down"  # audit writes time out
                bounded(pod.drain_once)  # the drainer probes: PostgreSQL answers
            first, second = pods
            assert first.replay.remember_jti("https://ehr.example.org", "during-lock", expires)
            assert not second.replay.remember_jti("https://ehr.example.org", "during-lock", expires)
            assert second.replay.remember_jti("https://ehr.example.org", "other", expires)
    finally:
        for pod in pods:
            pod.close()
