"""Monthly partitions of the audit trail on real PostgreSQL (revision 0002 + maintenance)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from service.audit import migrate
from service.audit.cli import db_group
from service.audit.partitions import (
    DEFAULT_PARTITION,
    Month,
    PartitionError,
    archive_month,
    attached_months,
    maintain,
)
from service.audit.records import InvocationRecord
from service.audit.spool import Spool, SpoolEntry
from service.audit.spooling import SpoolingAuditTrail
from testkit.pg import DatabaseFactory
from tests.integration import records
from tests.integration.trails import trail_on

pytestmark = pytest.mark.integration

THIS_MONTH = Month.containing(datetime.now(UTC))


def in_month(month: Month, day: int = 15) -> datetime:
    return month.start.replace(day=day, hour=10, minute=30, second=5, microsecond=123456)


@pytest.fixture
def url(make_database: DatabaseFactory) -> str:
    """A database of its own: these tests create and detach partitions."""
    return make_database()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def trail(url: str, tmp_path: Path) -> Iterator[SpoolingAuditTrail]:
    trail = trail_on(create_engine(url), Spool(tmp_path / "spool"))
    yield trail
    trail.close()


def partition_of(engine: Engine, invocation_id: uuid.UUID) -> list[str]:
    """Where the rows of this invocation id physically are (one row: one partition name)."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text("SELECT tableoid::regclass::text FROM invocation WHERE id = :id"),
                {"id": invocation_id},
            )
        )


def count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def partitions_cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(db_group, ["partitions", *args], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


# -- months ------------------------------------------------------------------------------


def test_month_arithmetic_and_names() -> None:
    assert Month(2025, 11).plus(2) == Month(2026, 1)
    assert Month(2025, 1).plus(-1) == Month(2024, 12)
    assert Month(2025, 12).end == datetime(2026, 1, 1, tzinfo=UTC)
    assert Month.parse("2025-03").partition == "invocation_y2025m03"
    assert Month.containing(datetime(2025, 3, 31, 23, 30, tzinfo=UTC)) == Month(2025, 3)
    # 00:30 on 1 April at UTC+02:00 is still March in UTC: months are UTC months
    assert Month.containing(datetime(2025, 4, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == (
        Month(2025, 3)
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        Month.containing(datetime(2025, 4, 1))
    with pytest.raises(ValueError, match="YYYY-MM"):
        Month.parse("2025-3")
    with pytest.raises(ValueError, match="not a month"):
        Month(2025, 13)


# -- the migration ---------------------------------------------------------------------------


def test_head_is_partitioned_with_default_and_months_ahead(engine: Engine) -> None:
    with engine.connect() as conn:
        kind = conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = 'invocation'::regclass"))
        key = conn.scalar(text("SELECT pg_get_partkeydef('invocation'::regclass)"))
        primary = conn.scalar(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'invocation'::regclass AND contype = 'p'"
            )
        )
        default = conn.scalar(
            text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = :name"),
            {"name": DEFAULT_PARTITION},
        )
        months = sorted(attached_months(conn))
    assert (kind, key, primary) == ("p", "RANGE (occurred_at)", "PRIMARY KEY (id, occurred_at)")
    assert default == "DEFAULT"
    assert months == [THIS_MONTH.plus(n) for n in range(4)]


def test_rows_land_in_their_months_partition(trail: SpoolingAuditTrail, engine: Engine) -> None:
    now = records.invocation(cards=1)
    next_month = records.invocation(cards=2, occurred_at=in_month(THIS_MONTH.plus(1), day=1))
    last_instant = THIS_MONTH.plus(2).end - timedelta(microseconds=1)
    at_the_edge = records.invocation(cards=0, occurred_at=last_instant)
    for record in (now, next_month, at_the_edge):
        trail.record_invocation(record)
    assert partition_of(engine, now.id) == [THIS_MONTH.partition]
    assert partition_of(engine, next_month.id) == [THIS_MONTH.plus(1).partition]
    assert partition_of(engine, at_the_edge.id) == [THIS_MONTH.plus(2).partition]
    cards = count(
        engine,
        "SELECT count(*) FROM issued_card WHERE invocation_id = :id "
        "AND invocation_occurred_at = :at",
        id=next_month.id,
        at=next_month.occurred_at,
    )
    assert cards == 2


def test_a_replayed_record_is_stored_once(
    trail: SpoolingAuditTrail, engine: Engine, tmp_path: Path
) -> None:
    """The spool replays on the primary key (id, occurred_at): a record keeps both."""
    record = records.invocation(cards=2)
    trail.record_invocation(record)
    spool = Spool(tmp_path / "replay")
    replayer = trail_on(create_engine(str(engine.url)), spool)
    try:
        restored = SpoolEntry.from_payload(SpoolEntry(record).payload())
        spool.append(restored)
        spool.append(restored)
        assert replayer.drain_once() == 2
    finally:
        replayer.close()
    assert partition_of(engine, record.id) == [THIS_MONTH.partition]
    assert (
        count(engine, "SELECT count(*) FROM issued_card WHERE invocation_id = :id", id=record.id)
        == 2
    )


# -- DEFAULT and maintenance ------------------------------------------------------------------


def test_default_catches_a_month_without_partition_and_maintenance_moves_it(
    trail: SpoolingAuditTrail, engine: Engine, url: str
) -> None:
    far = THIS_MONTH.plus(14)
    farther = THIS_MONTH.plus(20)
    first = records.invocation(cards=2, occurred_at=in_month(far, day=3))
    second = records.invocation(cards=1, occurred_at=in_month(far, day=28))
    other = records.invocation(cards=1, occurred_at=in_month(farther))
    for record in (first, second, other, first):  # the repeat is a replay: ignored
        trail.record_invocation(record)
    assert trail.record_feedback([records.feedback(first.cards[0].uuid)]) == 1
    assert partition_of(engine, first.id) == [DEFAULT_PARTITION]
    assert count(engine, f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 3

    output = partitions_cli(url, "--months-ahead", "5")

    assert f"created partition {far.partition} (2 rows moved from the DEFAULT partition)" in output
    assert f"created partition {farther.partition} (1 rows moved" in output
    assert f"created partition {THIS_MONTH.plus(5).partition}\n" in output
    assert count(engine, f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 0
    assert partition_of(engine, first.id) == [far.partition]
    assert partition_of(engine, second.id) == [far.partition]
    assert partition_of(engine, other.id) == [farther.partition]
    # the cards still reference their invocations, the feedback its card
    joined = count(
        engine,
        "SELECT count(*) FROM issued_card c JOIN invocation i "
        "ON i.id = c.invocation_id AND i.occurred_at = c.invocation_occurred_at "
        "WHERE i.id = ANY(:ids)",
        ids=[first.id, second.id, other.id],
    )
    assert joined == 4
    assert trail.known_card_uuids([first.cards[0].uuid]) == {first.cards[0].uuid}
    assert (
        count(
            engine, "SELECT count(*) FROM card_feedback WHERE card_uuid = :c", c=first.cards[0].uuid
        )
        == 1
    )
    # the foreign key is back, validated, and holds
    assert (
        count(
            engine,
            "SELECT count(*) FROM pg_constraint WHERE conname = "
            "'fk_issued_card_invocation_id_invocation' AND conparentid = 0 AND convalidated",
        )
        == 1
    )
    with (
        pytest.raises(IntegrityError, match="fk_issued_card_invocation_id_invocation"),
        engine.begin() as conn,
    ):
        conn.execute(
            text("INSERT INTO issued_card VALUES ('orphan', :id, 0, 'r', 'info', 't', :at)"),
            {"id": uuid.uuid4(), "at": first.occurred_at},
        )
    # a replay after the move is still one row; a second run has nothing to do
    trail.record_invocation(first)
    assert partition_of(engine, first.id) == [far.partition]
    again = partitions_cli(url, "--months-ahead", "5")
    assert "created" not in again
    assert "audit partitions: 8 months" in again


def test_concurrent_maintenance_creates_each_month_once(engine: Engine) -> None:
    results: list[tuple[Month, ...]] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            start.wait()
            results.append(maintain(engine, months_ahead=12).created)
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=run) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    created = sorted(month for run in results for month in run)
    assert created == [THIS_MONTH.plus(n) for n in range(4, 13)]


def test_maintenance_refuses_an_unpartitioned_database(make_database: DatabaseFactory) -> None:
    url = make_database(migrated=False)
    migrate.upgrade(url, "0001_audit_trail")
    result = CliRunner().invoke(db_group, ["partitions"], env={"DATABASE_URL": url})
    assert result.exit_code != 0
    assert "not partitioned: run `backpain-cds db upgrade` first" in result.output


def test_sqlite_has_no_partitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate.upgrade(url)
    assert "PostgreSQL only" in partitions_cli(url)


# -- the migration keeps the data ------------------------------------------------------------


def stored(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.seq, i.id, i.occurred_at, i.patient_ref, i.fired_rules::text, "
                "c.card_uuid, c.indicator, f.outcome FROM invocation i "
                "LEFT JOIN issued_card c ON c.invocation_id = i.id "
                "LEFT JOIN card_feedback f ON f.card_uuid = c.card_uuid "
                "ORDER BY i.seq, c.position"
            )
        )
        return [tuple(row) for row in rows]


def test_upgrade_downgrade_upgrade_keeps_the_rows(
    url: str, engine: Engine, trail: SpoolingAuditTrail
) -> None:
    lonely = THIS_MONTH.plus(30)  # no partition: DEFAULT
    written: list[InvocationRecord] = [
        records.invocation(cards=2),
        records.invocation(cards=0, http_status=500, error_code="exception"),
        records.invocation(cards=1, occurred_at=in_month(lonely)),
    ]
    for record in written:
        trail.record_invocation(record)
    trail.record_feedback([records.feedback(written[0].cards[1].uuid, outcome="accepted")])
    before = stored(engine)
    assert len(before) == 4

    migrate.downgrade(url, "0001_audit_trail")
    assert stored(engine) == before
    assert partition_of(engine, written[2].id) == ["invocation"]
    assert count(engine, "SELECT count(*) FROM pg_class WHERE relname LIKE 'invocation_y%'") == 0

    migrate.upgrade(url)
    assert stored(engine) == before
    # the migration gives every month holding rows its partition
    assert partition_of(engine, written[2].id) == [lonely.partition]
    assert partition_of(engine, written[0].id) == [THIS_MONTH.partition]
    # the arrival counter carries on after the copied rows
    later = records.invocation(cards=1)
    trail.record_invocation(later)
    with engine.connect() as conn:
        seqs = conn.scalars(text("SELECT seq FROM invocation ORDER BY seq")).all()
    assert seqs[-1] > max(int(str(row[0])) for row in before)


def test_cards_written_by_the_previous_release_get_their_invocation_time(engine: Engine) -> None:
    """During a roll-out, 0001's code inserts cards without invocation_occurred_at."""
    invocation_id = uuid.uuid4()
    at = in_month(THIS_MONTH, day=2)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO invocation (id, occurred_at, http_status, latency_ms, fired_rules) "
                "VALUES (:id, :at, 200, 1.0, '[]') ON CONFLICT DO NOTHING"
            ),
            {"id": invocation_id, "at": at},
        )
        conn.execute(
            text(
                "INSERT INTO issued_card (card_uuid, invocation_id, position, rule_id, "
                "indicator, topic) VALUES (:card, :id, 0, 'r', 'info', 't') "
                "ON CONFLICT DO NOTHING"
            ),
            {"card": str(uuid.uuid4()), "id": invocation_id},
        )
    filled = count(
        engine,
        "SELECT count(*) FROM issued_card "
        "WHERE invocation_id = :id AND invocation_occurred_at = :at",
        id=invocation_id,
        at=at,
    )
    assert filled == 1


# -- retention ----------------------------------------------------------------------------------


def test_archiving_a_past_month_detaches_it_with_its_cards_and_feedback(
    url: str, engine: Engine, trail: SpoolingAuditTrail
) -> None:
    old = THIS_MONTH.plus(-2)
    archived = [records.invocation(cards=2, occurred_at=in_month(old, day=d)) for d in (1, 20)]
    kept = records.invocation(cards=1)
    for record in (*archived, kept):
        trail.record_invocation(record)
    maintain(engine)  # old month's rows were in DEFAULT: now in their own partition
    assert partition_of(engine, archived[0].id) == [old.partition]
    trail.record_feedback([records.feedback(archived[0].cards[0].uuid)])
    trail.record_feedback([records.feedback(kept.cards[0].uuid, outcome="accepted")])

    with pytest.raises(PartitionError, match="not in the past"):
        archive_month(engine, THIS_MONTH)
    refused = CliRunner().invoke(
        db_group, ["archive-month", str(old)], env={"DATABASE_URL": url}, input="n\n"
    )
    assert refused.exit_code != 0
    assert partition_of(engine, archived[0].id) == [old.partition]

    result = CliRunner().invoke(
        db_group, ["archive-month", str(old), "--yes"], env={"DATABASE_URL": url}
    )
    assert result.exit_code == 0, result.output
    suffix = old.suffix
    assert (
        f"{old} detached: invocation_{suffix} (2 invocations), issued_card_{suffix} (4 cards), "
        f"card_feedback_{suffix} (1 feedback)"
    ) in result.output

    assert partition_of(engine, archived[0].id) == []
    assert old not in attached_months_of(engine)
    assert count(engine, f"SELECT count(*) FROM invocation_{suffix}") == 2
    assert count(engine, f"SELECT count(*) FROM issued_card_{suffix}") == 4
    assert count(engine, f"SELECT count(*) FROM card_feedback_{suffix}") == 1
    assert trail.known_card_uuids([archived[0].cards[0].uuid]) == set()
    # the live trail is untouched and keeps taking rows
    assert partition_of(engine, kept.id) == [THIS_MONTH.partition]
    assert trail.known_card_uuids([kept.cards[0].uuid]) == {kept.cards[0].uuid}
    trail.record_invocation(records.invocation(cards=1))
    # a late record of the archived month waits in DEFAULT; maintenance says why it stays
    late = records.invocation(cards=0, occurred_at=in_month(old, day=9))
    trail.record_invocation(late)
    assert partition_of(engine, late.id) == [DEFAULT_PARTITION]
    with pytest.raises(PartitionError, match=f"invocation_{suffix} exists but is not a partition"):
        maintain(engine)


def test_feedback_on_a_card_issued_again_later_stays_live_when_its_first_month_goes(
    engine: Engine, trail: SpoolingAuditTrail
) -> None:
    """Card uuids repeat with a hookInstance; the feedback belongs to the live trail too."""
    old = THIS_MONTH.plus(-2)
    first = records.invocation(cards=1, occurred_at=in_month(old))
    again = dataclasses.replace(
        records.invocation(), cards=first.cards, fired_rules=first.fired_rules
    )
    trail.record_invocation(first)
    trail.record_invocation(again)
    maintain(engine)
    trail.record_feedback([records.feedback(first.cards[0].uuid)])

    archived = archive_month(engine, old)
    assert (archived.issued_cards, archived.feedback) == (1, 0)
    card = first.cards[0].uuid
    assert count(engine, "SELECT count(*) FROM card_feedback WHERE card_uuid = :c", c=card) == 1
    assert trail.known_card_uuids([card]) == {card}


def attached_months_of(engine: Engine) -> set[Month]:
    with engine.connect() as conn:
        return set(attached_months(conn))
