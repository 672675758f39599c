"""Issue 11 finding 10 (store side): strangers cost a counter, not a row each.

Calls refused before authentication are counted per client per time window and
written as one row per window; the audit still says they happened and how many.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, func, select, text

from service.audit.audit_cli import audit_group
from service.audit.models import invocation, refused_call
from service.audit.refusals import OTHER_CLIENTS, RefusalCounter
from service.audit.spooling import SpoolingAuditTrail
from testkit.pg import DatabaseFactory
from tests.integration.trails import trail_on

pytestmark = pytest.mark.integration

T0 = datetime(2030, 5, 6, 7, 8, 0, tzinfo=UTC)  # on a minute: windows of 60 s start here


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def rows(engine: Engine) -> list[tuple[str, int, int]]:
    with engine.connect() as conn:
        found = conn.execute(
            select(
                refused_call.c.client_key, refused_call.c.http_status, refused_call.c.count
            ).order_by(refused_call.c.window_start, refused_call.c.client_key)
        ).all()
    return [tuple(row) for row in found]  # type: ignore[misc]


def count_invocations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(invocation)) or 0)


@pytest.fixture
def url(make_database: DatabaseFactory) -> str:
    return make_database()


@pytest.fixture
def engine(url: str) -> Engine:
    engine = create_engine(url)
    yield engine  # type: ignore[misc]
    engine.dispose()


def trail(url: str, spool: Path, clock: Clock, **options: object) -> SpoolingAuditTrail:
    return trail_on(create_engine(url), spool, clock=clock, **options)


def test_refusals_are_one_row_per_client_per_window_and_the_audit_says_how_many(
    url: str, engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    audit = trail(url, tmp_path / "spool", clock)
    try:
        for n in range(600):  # one stranger, 10 a second for a minute
            audit.record_refusal("203.0.113.7", 401, T0 + timedelta(seconds=n / 10))
        for n in range(40):
            audit.record_refusal("198.51.100.2", 401, T0 + timedelta(seconds=n))
        audit.record_refusal("203.0.113.7", 401, T0 + timedelta(seconds=61))  # next window

        assert audit.flush_refusals() == 0  # the first window has not closed yet
        clock.now = T0 + timedelta(seconds=60)
        assert audit.flush_refusals() == 2
        assert rows(engine) == [("198.51.100.2", 401, 40), ("203.0.113.7", 401, 600)]
        assert count_invocations(engine) == 0  # no row per call
    finally:
        audit.close()  # writes the window still open
    assert sorted(rows(engine)) == [
        ("198.51.100.2", 401, 40),
        ("203.0.113.7", 401, 1),
        ("203.0.113.7", 401, 600),
    ]

    env = {"DATABASE_URL": url, "AUDIT_SPOOL_DIR": str(tmp_path / "spool")}
    shown = CliRunner().invoke(audit_group, ["show"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "refused before authentication: 641 call(s) from 2 client(s)" in shown.output
    listed = CliRunner().invoke(audit_group, ["refusals", "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    summary = [(r["client_key"], r["http_status"], r["count"]) for r in json.loads(listed.output)]
    assert summary == [("203.0.113.7", 401, 601), ("198.51.100.2", 401, 40)]
    assert json.loads(listed.output)[0]["first_at"].startswith("2030-05-06T07:08:00")


def test_refusal_counts_wait_in_the_spool_through_an_outage(
    url: str, engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    audit = trail(url, tmp_path / "spool", clock)
    try:
        with engine.begin() as conn:  # the table is gone for a while: an outage
            conn.execute(text("ALTER TABLE refused_call RENAME TO refused_call_away"))
        for _ in range(5):
            audit.record_refusal("203.0.113.7", 401, T0)
        clock.now = T0 + timedelta(minutes=1)
        audit.flush_refusals()
        assert (audit.health()["database"], audit.health()["spool_depth"]) == ("down", 1)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE refused_call_away RENAME TO refused_call"))
        assert audit.drain_once() == 1
    finally:
        audit.close()
    assert rows(engine) == [("203.0.113.7", 401, 5)]


def test_memory_is_bounded_per_window() -> None:
    counter = RefusalCounter(window_seconds=60, max_clients=10)
    for n in range(2000):
        counter.count(f"198.51.100.{n}", 401, T0)
    counter.count("x" * 5000, 401, T0 + timedelta(minutes=2))  # a client key of any length
    counts = counter.closed()
    first = [c for c in counts if c.window_start == T0]
    assert len(first) == 11
    assert sum(c.count for c in first) == 2000
    assert [c.count for c in first if c.client_key == OTHER_CLIENTS] == [1990]
    [later] = [c for c in counts if c.window_start != T0]
    assert later.client_key.startswith("sha256:") and len(later.client_key) < 100
