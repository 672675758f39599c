"""The spool alone (no database): fsync'd lines, ownership by lock, orphans adopted in order."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from service.audit.codec import feedback_fingerprint
from service.audit.framing import read_frames
from service.audit.records import FeedbackRecord, InvocationRecord
from service.audit.spool import Spool, SpoolEntry
from tests.integration import records


def test_entries_round_trip_through_a_framed_line() -> None:
    record = records.invocation(cards=2)
    line = SpoolEntry(record).to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    [payload] = read_frames(line).payloads
    assert json.loads(payload)["id"] == str(record.id)
    assert SpoolEntry.from_payload(payload).record == record
    feedback = records.feedback("c-1", accepted_suggestions=("s-1",))
    assert SpoolEntry.from_payload(SpoolEntry(feedback).payload()).record == feedback


def test_a_spool_file_of_the_previous_release_is_still_read(tmp_path: Path) -> None:
    """Plain JSON lines, no frames: what a pod upgraded with a non-empty spool finds."""
    written = [records.invocation(cards=1) for _ in range(3)]
    content = b"".join(SpoolEntry(r).payload() + b"\n" for r in written)
    replayed, dead = adopted_records(tmp_path / "old", content + b'{"kind": "invoc')
    assert replayed == written
    assert "torn last line" in dead


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
    payloads = read_frames(spool.path.read_bytes()).payloads
    assert [SpoolEntry.from_payload(payload).record for payload in payloads] == [late]
    spool.close()
    assert spool.path.exists()  # not empty: kept for the next process


def test_an_empty_spool_builds_no_line_for_a_record_it_does_not_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database up the spool is empty on every call: the record goes to the
    database, and encoding it as a spool line first was work thrown away on each call."""
    spool = Spool(tmp_path)
    built: list[SpoolEntry] = []
    to_line = SpoolEntry.to_line

    def counting(entry: SpoolEntry) -> bytes:
        built.append(entry)
        return to_line(entry)

    monkeypatch.setattr(SpoolEntry, "to_line", counting)
    assert spool.append_if_pending(SpoolEntry(records.invocation())) is False
    assert built == []
    held = SpoolEntry(records.invocation())
    spool.append(held)
    queued = SpoolEntry(records.invocation())
    assert spool.append_if_pending(queued) is True  # behind a held record: keeps the order
    assert built == [held, queued]
    assert spool.depth() == 2
    spool.close()


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


def adopted_records(spool_dir: Path, content: bytes) -> tuple[list[object], str]:
    """Leave ``content`` as a dead writer's spool file; what a new ``Spool`` adopts from it."""
    spool_dir.mkdir()
    (spool_dir / "spool-dead.jsonl").write_bytes(content)
    spool = Spool(spool_dir)
    seen: list[SpoolEntry] = []
    try:
        spool.drain(seen.extend)
    finally:
        spool.close()
    dead = spool_dir / "dead-letters.jsonl"
    return [entry.record for entry in seen], dead.read_text() if dead.exists() else ""


def test_a_stray_partial_record_loses_only_itself(tmp_path: Path) -> None:
    """Issue 11 finding 4(c): a torn write must not take the next good record with it."""
    good = [records.invocation(cards=1) for _ in range(3)]
    torn = records.invocation(cards=1)
    for cut in (1, 40):  # a stray first byte ("{" in the old format), a longer fragment
        content = SpoolEntry(torn).to_line()[:cut] + b"".join(SpoolEntry(r).to_line() for r in good)
        replayed, dead = adopted_records(tmp_path / f"cut-{cut}", content)
        assert replayed == good
        assert dead  # the fragment is kept aside, not dropped silently


def small_record() -> InvocationRecord:
    """An error invocation: few bytes, so every offset of a few records is quick to try."""
    return InvocationRecord(
        id=uuid.uuid4(), occurred_at=datetime.now(UTC), http_status=401, latency_ms=0.5
    )


def test_a_spool_file_cut_at_every_byte_offset(tmp_path: Path) -> None:
    """Records wholly before the cut are kept; those after the torn one too; nothing else."""
    written = [small_record(), small_record()]
    later = [small_record()]
    lines = [SpoolEntry(r).to_line() for r in written]
    data = b"".join(lines)
    ends = [sum(len(line) for line in lines[: n + 1]) for n in range(len(lines))]
    tail = b"".join(SpoolEntry(r).to_line() for r in later)
    for cut in range(len(data) + 1):
        whole = [r for r, end in zip(written, ends, strict=True) if end <= cut]
        replayed, dead = adopted_records(tmp_path / f"{cut}", data[:cut] + tail)
        assert replayed == whole + later, f"cut at byte {cut}"
        assert bool(dead) == (cut not in (0, *ends)), f"cut at byte {cut}"
