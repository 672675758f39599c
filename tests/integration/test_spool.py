"""The spool alone (no database): fsync'd lines, ownership by lock, orphans adopted in order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from service.audit.codec import feedback_fingerprint
from service.audit.records import FeedbackRecord
from service.audit.spool import Spool, SpoolEntry
from tests.integration import records


def test_entries_round_trip_through_a_line() -> None:
    record = records.invocation(cards=2)
    line = SpoolEntry(record).to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["id"] == str(record.id)
    assert SpoolEntry.from_line(line).record == record
    feedback = records.feedback("c-1", accepted_suggestions=("s-1",))
    assert SpoolEntry.from_line(SpoolEntry(feedback).to_line()).record == feedback


def test_a_live_writers_file_is_not_adopted_a_dead_ones_is(tmp_path: Path) -> None:
    writer = Spool(tmp_path)
    writer.append(SpoolEntry(records.invocation()))
    other = Spool(tmp_path)
    try:
        assert other.adopt_orphans() == 0  # writer holds its lock
        writer.close()  # gone, leaving one record behind
        assert other.adopt_orphans() == 1
        assert other.depth() == 1
    finally:
        other.close()


def test_drain_replays_in_order_and_keeps_what_failed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    written = [records.invocation() for _ in range(5)]
    for record in written:
        spool.append(SpoolEntry(record))
    seen: list[SpoolEntry] = []

    def broken(batch: Sequence[SpoolEntry]) -> None:
        raise ConnectionError("database still down")

    with pytest.raises(ConnectionError):
        spool.drain(broken)
    assert spool.depth() == 5

    assert spool.drain(seen.extend, batch_size=2) == 5
    assert [entry.record for entry in seen] == written
    assert spool.depth() == 0
    assert spool.path.read_bytes() == b""
    spool.close()
    assert not spool.path.exists()


def test_records_appended_during_a_drain_wait_for_the_next(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(SpoolEntry(records.invocation()))
    late = records.invocation()

    def sink(batch: Sequence[SpoolEntry]) -> None:
        spool.append(SpoolEntry(late))  # a request arrives mid-drain

    assert spool.drain(sink) == 1
    assert spool.depth() == 1
    assert [SpoolEntry.from_line(line).record for line in spool.path.read_bytes().splitlines()] == [
        late
    ]
    spool.close()
    assert spool.path.exists()  # not empty: kept for the next process


def test_feedback_fingerprint_is_the_one_earlier_releases_stored() -> None:
    """Feedback records lost their ``extra`` field; an identical repeat must still match."""
    record = FeedbackRecord(
        id=UUID(int=1),
        received_at=datetime(2025, 11, 24, tzinfo=UTC),
        service_id="svc",
        card_uuid="c-1",
        outcome="overridden",
        outcome_timestamp=datetime(2025, 11, 24, 9, 30, tzinfo=UTC),
        accepted_suggestions=("s-1",),
        override_reason={"reason": {"code": "x"}},
        client_iss="https://ehr.example.org",
    )
    # computed by the release whose records still had ``extra`` (commit 7f6e2ea)
    expected = "2f312e83fb50c0e21ac8d329eca2c8897f71543353450dcddb144dfe5bb42471"
    assert feedback_fingerprint(record) == expected
