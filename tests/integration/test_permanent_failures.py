"""Issue 11 finding 1: a record the database refuses for good must not wedge the audit.

Real PostgreSQL. An over-long client-chosen id is stored (its index is bounded); a
record refused anyway (here: a test-only index on ``error_detail`` that a 4,000-byte
random text overflows, SQLSTATE 54000, as ``patient_ref`` did) goes to the dead-letter
store; the database stays up, the spool keeps flowing, a restart does not wedge.
"""

from __future__ import annotations

import json
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, select, text

from service.audit.audit_cli import audit_group
from service.audit.models import invocation
from service.audit.records import InvocationRecord
from service.audit.spool import SpoolEntry
from service.audit.spooling import SpoolingAuditTrail
from service.audit.state import AuditHooks
from testkit.pg import DatabaseFactory
from tests.integration import records
from tests.integration.trails import trail_on

pytestmark = pytest.mark.integration

DEAD_LETTERS = "dead-letters.jsonl"


def stored(engine: Engine, *ids: object) -> set[object]:
    with engine.connect() as conn:
        return set(conn.scalars(select(invocation.c.id).where(invocation.c.id.in_(ids))))


def poisoned() -> InvocationRecord:
    """Refused for good by the test database's extra index (random text does not compress)."""
    return records.invocation(cards=1, error_code="invalid", error_detail=secrets.token_hex(2000))


@pytest.fixture
def strict_url(make_database: DatabaseFactory) -> str:
    url = make_database()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_test_error_detail ON invocation (error_detail)"))
    engine.dispose()
    return url


@pytest.fixture
def strict_engine(strict_url: str) -> Iterator[Engine]:
    engine = create_engine(strict_url)
    yield engine
    engine.dispose()


def test_an_over_long_patient_id_is_stored_and_found(
    audit_trail: SpoolingAuditTrail, database_url: str
) -> None:
    patient = "Patient/" + secrets.token_hex(2000)  # 4,008 characters, as in the report
    long_one = records.invocation(cards=1, patient=patient)
    after = records.invocation(cards=1)
    audit_trail.record_invocation(long_one)
    audit_trail.record_invocation(after)

    assert audit_trail.health()["database"] == "up"
    assert audit_trail.health()["spool_depth"] == 0
    engine = create_engine(database_url)
    try:
        assert stored(engine, long_one.id, after.id) == {long_one.id, after.id}
    finally:
        engine.dispose()
    result = CliRunner().invoke(
        audit_group,
        ["show", "--patient", patient, "--format", "json"],
        env={"DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert [entry["id"] for entry in json.loads(result.output)] == [str(long_one.id)]


def test_a_record_refused_for_good_is_dead_lettered_and_nothing_stops(
    strict_url: str, strict_engine: Engine, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    dead_kinds: list[str] = []
    outage_ops: list[str] = []
    hooks = AuditHooks(on_dead_letter=dead_kinds.append, on_database_error=outage_ops.append)
    trail = trail_on(create_engine(strict_url), spool_dir, hooks=hooks)
    bad, good = poisoned(), records.invocation(cards=1)
    try:
        trail.record_invocation(bad)
        trail.record_invocation(good)
        health = trail.health()
    finally:
        trail.close()

    assert (health["database"], health["spool_depth"]) == ("up", 0)
    assert stored(strict_engine, bad.id, good.id) == {good.id}
    assert dead_kinds == ["invocation"]
    assert outage_ops == []  # not an outage: no database error counted
    dead = spool_dir / DEAD_LETTERS
    assert stat.S_IMODE(dead.stat().st_mode) == 0o600

    env = {"DATABASE_URL": strict_url, "AUDIT_SPOOL_DIR": str(spool_dir)}
    listed = CliRunner().invoke(audit_group, ["dead-letters", "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    [letter] = json.loads(listed.output)
    assert (letter["kind"], letter["id"]) == ("invocation", str(bad.id))
    assert "SQLSTATE 54000" in letter["reason"]
    assert letter["record"]["record"]["error_detail"] == bad.error_detail  # kept whole
    table = CliRunner().invoke(audit_group, ["show"], env=env)
    assert table.exit_code == 0, table.output
    assert "1 audit record(s) never reached the database" in table.output


def test_a_restarted_worker_adopting_a_poisoned_spool_does_not_wedge(
    strict_url: str, strict_engine: Engine, tmp_path: Path
) -> None:
    """The wedged worker's spool: good, refused-for-good, good. The next one drains it."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    first, bad, last = records.invocation(), poisoned(), records.invocation()
    content = b"".join(SpoolEntry(r).to_line() for r in (first, bad, last))
    (spool_dir / "spool-wedged.jsonl").write_bytes(content)

    restarted = trail_on(create_engine(strict_url), spool_dir)
    try:
        assert restarted.health()["spool_depth"] == 3
        restarted.drain_once()
        health = restarted.health()
    finally:
        restarted.close()
    assert (health["database"], health["spool_depth"]) == ("up", 0)
    assert stored(strict_engine, first.id, bad.id, last.id) == {first.id, last.id}
    assert str(bad.id) in (spool_dir / DEAD_LETTERS).read_text()
    assert list(spool_dir.glob("spool-*.jsonl")) == []


def test_a_lone_surrogate_is_stored_with_a_visible_mark(
    audit_trail: SpoolingAuditTrail, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``"\\ud800"`` in JSON is a valid escape Python keeps, and UTF-8 cannot encode."""
    record = records.invocation(cards=1, patient="Patient/a\ud800b", error_detail="x\udfffy")
    audit_trail.record_invocation(record)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(invocation.c.patient_ref, invocation.c.error_detail).where(
                    invocation.c.id == record.id
                )
            ).one()
    finally:
        engine.dispose()
    assert tuple(row) == ("Patient/a\ufffdb", "x\ufffdy")
    assert "LOST" not in caplog.text
