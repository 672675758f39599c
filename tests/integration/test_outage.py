"""Database down, nothing lost: real PostgreSQL behind a TCP relay the test cuts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from service.audit.db import make_engine
from service.audit.models import invocation, metadata
from service.audit.records import AuditUnavailable, InvocationRecord
from service.audit.spool import Spool, SpoolEntry
from service.audit.state import AuditHooks
from testkit.pg import DatabaseFactory, free_port
from tests.integration import records
from tests.integration.proxy import TcpProxy
from tests.integration.trails import trail_on

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {condition.__doc__}")
        time.sleep(0.05)


def stored_ids_in_order(url: str, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                conn.scalars(
                    select(invocation.c.id)
                    .where(invocation.c.id.in_(ids))
                    .order_by(invocation.c.seq)
                )
            )
    finally:
        engine.dispose()


def count_rows(url: str, table_name: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(metadata.tables[table_name])
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.fixture
def fresh_database(make_database: DatabaseFactory) -> str:
    return make_database()


@pytest.fixture
def proxy(fresh_database: str) -> Iterator[TcpProxy]:
    with TcpProxy.in_front_of(fresh_database) as relay:
        yield relay


def test_n_calls_leave_n_rows_through_an_outage(
    fresh_database: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    via_proxy = proxy.url(fresh_database)
    failed_operations: list[str] = []
    trail = trail_on(
        make_engine(via_proxy, connect_timeout=1),
        Spool(tmp_path / "spool"),
        hooks=AuditHooks(on_database_error=failed_operations.append),
        drain_interval=0.1,
    )
    trail.start()
    calls: list[InvocationRecord] = []
    outage_seconds: list[float] = []

    def call(timings: list[float] | None = None) -> InvocationRecord:
        record = records.invocation(cards=1, patient="Patient/outage")
        started = time.monotonic()
        trail.record_invocation(record)  # must never raise
        if timings is not None:
            timings.append(time.monotonic() - started)
        calls.append(record)
        return record

    try:
        for _ in range(20):
            call()
        assert trail.health() == {
            "database": "up",
            "spool_depth": 0,
            "replay_pending": 0,
            "database_errors": 0,
        }

        proxy.cut()
        during = [call(outage_seconds) for _ in range(30)]
        health = trail.health()
        assert health["database"] == "down"
        assert health["spool_depth"] == 30
        assert health["database_errors"] >= 1
        # each failure reached the metrics hook as it happened, named by its operation
        assert set(failed_operations) & {"write", "drain"}  # whichever noticed first
        assert len(failed_operations) >= health["database_errors"]  # the drainer keeps trying
        assert max(outage_seconds) < 2.0, outage_seconds

        # feedback on a card issued during the outage: known from the spool, spooled too
        card = during[-1].cards[0].uuid
        assert trail.known_card_uuids([card]) == {card}
        assert trail.known_card_uuids([card], issuer=during[-1].client_iss) == {card}
        with pytest.raises(AuditUnavailable, match="spool does not know"):
            trail.known_card_uuids([card], issuer="https://other.example.org")
        with pytest.raises(AuditUnavailable, match="spool does not know"):
            trail.known_card_uuids([card, str(uuid.uuid4())])
        assert trail.record_feedback([records.feedback(card)]) == 1
        # replay protection falls back to this process's memory
        assert trail.replay.remember_jti(
            "https://ehr.example.org", "j-outage", records.in_minutes(5)
        )
        assert not trail.replay.remember_jti(
            "https://ehr.example.org", "j-outage", records.in_minutes(5)
        )

        proxy.restore()
        for _ in range(20):
            call()

        def drained() -> bool:
            """the spool drained into the database"""
            health = trail.health()
            return (health["database"], health["spool_depth"]) == ("up", 0)

        wait_until(drained)
        for _ in range(5):  # and the direct path is back
            call()
        assert trail.health()["spool_depth"] == 0
    finally:
        trail.close()

    ids = [record.id for record in calls]
    assert len(ids) == 75
    assert stored_ids_in_order(fresh_database, ids) == ids  # N rows, no duplicates, in order
    assert count_rows(fresh_database, "invocation") == 75
    assert count_rows(fresh_database, "issued_card") == 75
    assert count_rows(fresh_database, "card_feedback") == 1
    assert not (tmp_path / "spool" / "dead-letters.jsonl").exists()


def test_spool_survives_a_restart(fresh_database: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    nowhere = (
        make_url(fresh_database)
        .set(host="127.0.0.1", port=free_port())
        .render_as_string(hide_password=False)
    )
    first = trail_on(make_engine(nowhere, connect_timeout=1), Spool(spool_dir))
    written = [records.invocation(cards=1) for _ in range(5)]
    for record in written:
        first.record_invocation(record)
    assert first.health()["database"] == "down"
    assert first.health()["spool_depth"] == 5
    first.close()  # the process goes away; its spool file stays
    assert len(list(spool_dir.glob("spool-*.jsonl"))) == 1

    second = trail_on(make_engine(fresh_database), Spool(spool_dir), drain_interval=0.1)
    try:
        assert second.health()["spool_depth"] == 5  # adopted at start
        # an invocation arriving now queues behind the older ones
        late = records.invocation(cards=0)
        second.record_invocation(late)
        assert second.drain_once() == 6
        assert second.health() == {
            "database": "up",
            "spool_depth": 0,
            "replay_pending": 0,
            "database_errors": 0,
        }
    finally:
        second.close()
    ids = [r.id for r in [*written, late]]
    assert stored_ids_in_order(fresh_database, ids) == ids
    assert list(spool_dir.glob("spool-*.jsonl")) == []


def test_crash_after_commit_before_truncation_does_not_duplicate(
    fresh_database: str, tmp_path: Path
) -> None:
    """A spool file whose records already reached the database replays to no new rows."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    already = [records.invocation(cards=1) for _ in range(3)]
    not_yet = [records.invocation(cards=1) for _ in range(2)]
    trail = trail_on(make_engine(fresh_database), Spool(tmp_path / "other"))
    for record in already:
        trail.record_invocation(record)
    trail.close()
    lines = b"".join(SpoolEntry(r).to_line() for r in [*already, *not_yet])
    torn = SpoolEntry(records.invocation()).to_line()[:40]  # the crash hit mid-write
    (spool_dir / "spool-crashed.jsonl").write_bytes(lines + torn)

    restarted = trail_on(make_engine(fresh_database), Spool(spool_dir))
    try:
        assert restarted.drain_once() == 5
    finally:
        restarted.close()
    ids = [r.id for r in [*already, *not_yet]]
    assert stored_ids_in_order(fresh_database, ids) == ids
    assert count_rows(fresh_database, "invocation") == 5
    assert count_rows(fresh_database, "issued_card") == 5
    assert "torn record" in (spool_dir / "dead-letters.jsonl").read_text()
