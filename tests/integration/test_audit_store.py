"""The audit trail on real PostgreSQL: rows, concurrency, feedback links, jti replay."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from service.audit.db import make_engine
from service.audit.ledger import ReplayLedger
from service.audit.models import card_feedback, invocation, issued_card, used_jti
from service.audit.records import FeedbackRefused
from service.audit.replay import JtiReplayStore
from service.audit.spooling import SpoolingAuditTrail
from service.audit.state import DatabaseState
from tests.integration import records

pytestmark = pytest.mark.integration


@pytest.fixture
def reader(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def test_invocation_round_trip(audit_trail: SpoolingAuditTrail, reader: Engine) -> None:
    record = records.invocation(cards=2, patient="Patient/round-trip")
    audit_trail.record_invocation(record)

    with reader.connect() as conn:
        row = conn.execute(select(invocation).where(invocation.c.id == record.id)).mappings().one()
        cards = conn.execute(
            select(issued_card)
            .where(issued_card.c.invocation_id == record.id)
            .order_by(issued_card.c.position)
        ).mappings()
        card_list = [dict(card) for card in cards]
    assert row["occurred_at"] == record.occurred_at
    assert row["occurred_at"].tzinfo is not None
    assert row["patient_ref"] == "Patient/round-trip"
    assert row["hook_instance"] == record.hook_instance
    assert row["qr_sha256"] == record.qr_sha256
    assert row["questionnaire"] == record.questionnaire
    assert row["rules_version"] == "2025.11"
    assert row["http_status"] == 200
    assert row["fired_rules"] == [
        {
            "rule_id": "rule-0",
            "rule_version": "1",
            "evidence": [{"linkId": "saddle-numbness", "answer": "yes"}],
        },
        {
            "rule_id": "rule-1",
            "rule_version": "1",
            "evidence": [{"linkId": "saddle-numbness", "answer": "yes"}],
        },
    ]
    assert [(c["card_uuid"], c["indicator"], c["position"]) for c in card_list] == [
        (record.cards[0].uuid, "critical", 0),
        (record.cards[1].uuid, "warning", 1),
    ]
    assert audit_trail.health() == {
        "database": "up",
        "spool_depth": 0,
        "replay_pending": 0,
        "database_errors": 0,
    }


def test_error_invocation_is_recorded(audit_trail: SpoolingAuditTrail, reader: Engine) -> None:
    record = records.invocation(
        cards=0, http_status=400, error_code="invalid", error_detail="context.patientId missing"
    )
    audit_trail.record_invocation(record)
    with reader.connect() as conn:
        row = conn.execute(select(invocation).where(invocation.c.id == record.id)).mappings().one()
    assert (row["http_status"], row["error_code"]) == (400, "invalid")
    assert row["fired_rules"] == []


def test_the_same_record_twice_is_one_row(audit_trail: SpoolingAuditTrail, reader: Engine) -> None:
    record = records.invocation(cards=1)
    audit_trail.record_invocation(record)
    audit_trail.record_invocation(record)
    with reader.connect() as conn:
        count = conn.scalar(
            select(func.count()).select_from(invocation).where(invocation.c.id == record.id)
        )
    assert count == 1


def test_many_threads_at_once_every_row_is_there(
    audit_trail: SpoolingAuditTrail, reader: Engine
) -> None:
    threads, per_thread = 12, 25
    written: list[uuid.UUID] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                record = records.invocation(cards=2, patient="Patient/concurrency")
                audit_trail.record_invocation(record)
                with lock:
                    written.append(record.id)
        except BaseException as exc:  # reported below, not swallowed
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert failures == []
    assert audit_trail.health() == {
        "database": "up",
        "spool_depth": 0,
        "replay_pending": 0,
        "database_errors": 0,
    }
    with reader.connect() as conn:
        stored = set(conn.scalars(select(invocation.c.id).where(invocation.c.id.in_(written))))
        cards = conn.scalar(
            select(func.count())
            .select_from(issued_card)
            .where(issued_card.c.invocation_id.in_(written))
        )
    assert len(written) == threads * per_thread
    assert stored == set(written)
    assert cards == 2 * threads * per_thread


def test_feedback_links_to_issued_cards(audit_trail: SpoolingAuditTrail, reader: Engine) -> None:
    record = records.invocation(cards=2)
    audit_trail.record_invocation(record)
    first, second = (card.uuid for card in record.cards)
    unknown = str(uuid.uuid4())

    assert audit_trail.known_card_uuids([first, second, unknown]) == {first, second}
    assert audit_trail.known_card_uuids([]) == set()
    # feedback is for the client the card was issued to (issue 11, finding 11)
    issuer = record.client_iss
    assert audit_trail.known_card_uuids([first], issuer=issuer) == {first}
    assert audit_trail.known_card_uuids([first], issuer="https://other.example.org") == set()

    overridden = records.feedback(first)
    assert audit_trail.record_feedback([overridden]) == 1
    # the identical feedback posted again (new request id, later) is stored once
    repeat = records.feedback(
        first,
        id=uuid.uuid4(),
        received_at=overridden.received_at + timedelta(seconds=5),
    )
    assert audit_trail.record_feedback([repeat]) == 0
    # identical twice in one post, plus a different one
    accepted = records.feedback(second, outcome="accepted", accepted_suggestions=("s-1",))
    assert audit_trail.record_feedback([accepted, accepted, repeat]) == 1

    with reader.connect() as conn:
        rows = conn.execute(
            select(card_feedback.c.card_uuid, card_feedback.c.outcome)
            .where(card_feedback.c.card_uuid.in_([first, second]))
            .order_by(card_feedback.c.outcome)
        ).all()
    assert [tuple(r) for r in rows] == [(second, "accepted"), (first, "overridden")]


def test_feedback_on_a_card_never_issued_is_refused(audit_trail: SpoolingAuditTrail) -> None:
    with pytest.raises(FeedbackRefused, match="feedback refused"):
        audit_trail.record_feedback([records.feedback(str(uuid.uuid4()))])


def test_jti_replay(audit_trail: SpoolingAuditTrail) -> None:
    iss, jti = "https://ehr.example.org", str(uuid.uuid4())
    expires = records.in_minutes(5)
    assert audit_trail.replay.remember_jti(iss, jti, expires) is True
    assert audit_trail.replay.remember_jti(iss, jti, expires) is False
    # the same jti from another issuer is another token
    assert audit_trail.replay.remember_jti("https://other.example.org", jti, expires) is True


def test_many_threads_race_one_jti_exactly_one_wins(audit_trail: SpoolingAuditTrail) -> None:
    jti = str(uuid.uuid4())
    results: list[bool] = []
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        results.append(
            audit_trail.replay.remember_jti("https://ehr.example.org", jti, records.in_minutes(5))
        )

    workers = [threading.Thread(target=race) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == [False] * 7 + [True]


def test_expired_jti_may_be_reused_and_is_pruned(
    database_url: str, reader: Engine, tmp_path: Path
) -> None:
    now = [datetime(2030, 1, 1, 12, 0, tzinfo=UTC)]
    engine = make_engine(database_url)
    trail = JtiReplayStore(
        engine, DatabaseState(), ReplayLedger(tmp_path / "spool"), clock=lambda: now[0]
    )
    try:
        iss, jti = "https://ehr.example.org", str(uuid.uuid4())
        assert trail.remember_jti(iss, jti, now[0] + timedelta(minutes=5)) is True
        assert trail.remember_jti(iss, jti, now[0] + timedelta(minutes=5)) is False
        now[0] += timedelta(minutes=6)  # the first token has expired
        assert trail.remember_jti(iss, jti, now[0] + timedelta(minutes=5)) is True
        assert trail.remember_jti(iss, jti, now[0] + timedelta(minutes=5)) is False

        other = str(uuid.uuid4())
        assert trail.remember_jti(iss, other, now[0] + timedelta(minutes=1)) is True
        now[0] += timedelta(minutes=2)
        assert trail.prune_expired() >= 1
        with reader.connect() as conn:
            left = set(conn.scalars(select(used_jti.c.jti).where(used_jti.c.jti.in_([jti, other]))))
        assert left == {jti}
    finally:
        trail.close()
        engine.dispose()


def test_naive_times_are_refused_not_stored_wrong(
    audit_trail: SpoolingAuditTrail, tmp_path: Path
) -> None:
    """A record the database refuses for its content is kept aside, never raised, never lost."""
    record = records.invocation(occurred_at=datetime(2025, 1, 1, 12, 0))  # no zone
    audit_trail.record_invocation(record)
    rejected = (tmp_path / "spool" / "dead-letters.jsonl").read_text()
    assert str(record.id) in rejected
    assert "database refused invocation: StatementError (ValueError)" in rejected
    assert audit_trail.health() == {
        "database": "up",
        "spool_depth": 0,
        "replay_pending": 0,
        "database_errors": 0,
    }
