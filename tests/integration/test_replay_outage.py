"""Issue 11 finding 2: replay protection around a database outage (and issue 15: the same
when a hook call's jti is settled in the statement that writes its audit record).

Real PostgreSQL behind a relay the test cuts. Two trails on one spool directory are
two workers of one pod; a trail on another directory, straight to the database, is
another pod.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.audit.deadletter import read_dead_letters
from service.audit.factory import create_audit_trail
from service.audit.records import (
    AuditUnavailable,
    InvocationRecord,
    IssuedCard,
    ReplayUnavailable,
)
from service.audit.spooling import SpoolingAuditTrail
from service.config import Settings
from testkit.pg import DatabaseFactory, scalar_int
from tests.integration import records
from tests.integration.proxy import TcpProxy
from tests.integration.test_timeouts import BOUND_SECONDS, bounded, table_locked

pytestmark = pytest.mark.integration

ISS = "https://ehr.example.org"


@pytest.fixture
def url(make_database: DatabaseFactory) -> str:
    return make_database()


@pytest.fixture
def proxy(url: str) -> Iterator[TcpProxy]:
    with TcpProxy.in_front_of(url) as relay:
        yield relay


def worker(url: str, spool_dir: Path, **settings: object) -> SpoolingAuditTrail:
    """One gunicorn worker's audit trail (its drainer not started: the test drains)."""
    config = Settings(database_url=url, spool_dir=spool_dir, db_connect_timeout=1, **settings)  # type: ignore[arg-type]
    return create_audit_trail(config, start=False)


def test_no_jti_is_accepted_twice_in_a_pod_and_every_one_reaches_postgres(
    url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    pod = tmp_path / "pod-a"
    first, second = worker(proxy.url(url), pod), worker(proxy.url(url), pod)
    other_pod = worker(url, tmp_path / "pod-b")
    expires = records.in_minutes(5)
    try:
        assert first.replay.remember_jti(ISS, "before", expires) is True

        proxy.cut()
        # used before the outage: refused by every worker of the pod during it
        assert first.replay.remember_jti(ISS, "before", expires) is False
        assert second.replay.remember_jti(ISS, "before", expires) is False
        # accepted during the outage by one worker: refused by the others
        assert second.replay.remember_jti(ISS, "during", expires) is True
        assert first.replay.remember_jti(ISS, "during", expires) is False
        assert second.replay.remember_jti(ISS, "during", expires) is False
        assert first.health()["replay_pending"] == 1

        proxy.restore()
        first.drain_once()
        assert first.health()["replay_pending"] == 0
        assert first.health()["database"] == "up"
        # the jti accepted during the outage reached PostgreSQL: another pod refuses it
        assert other_pod.replay.remember_jti(ISS, "during", expires) is False
        assert other_pod.replay.remember_jti(ISS, "after", expires) is True
    finally:
        for trail in (first, second, other_pod):
            trail.close()


def test_fail_closed_refuses_while_postgres_cannot_be_asked(
    url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    trail = worker(proxy.url(url), tmp_path / "pod", replay_fail_closed=True)
    expires = records.in_minutes(5)
    try:
        proxy.cut()
        with pytest.raises(ReplayUnavailable):
            trail.replay.remember_jti(ISS, "refused", expires)
        assert issubclass(ReplayUnavailable, AuditUnavailable)  # the auth layer's 503
        with pytest.raises(ReplayUnavailable):
            trail.replay.remember_jti(ISS, "refused", expires)  # still unknown, not a replay
        proxy.restore()
        trail.drain_once()
        # the refused call was never accepted: its token may be used once now
        assert trail.replay.remember_jti(ISS, "refused", expires) is True
        assert trail.replay.remember_jti(ISS, "refused", expires) is False
    finally:
        trail.close()


def test_fail_closed_is_a_setting() -> None:
    assert Settings.from_env({"CDS_REPLAY_FAIL_CLOSED": "on"}).replay_fail_closed is True
    assert Settings.from_env({}).replay_fail_closed is False


# -- a hook call's jti settled with its audit record (issue 15) ----------------------------


def invocations_of(url: str, record: InvocationRecord) -> int:
    return scalar_int(url, "SELECT count(*) FROM invocation WHERE id = :i", i=record.id)


def test_a_claim_settled_with_its_record_during_an_outage_is_pending_then_reaches_postgres(
    url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    pod = tmp_path / "pod-a"
    first, second = worker(proxy.url(url), pod), worker(proxy.url(url), pod)
    other_pod = worker(url, tmp_path / "pod-b")
    expires = records.in_minutes(5)
    try:
        used = first.replay.claim_jti(ISS, "before", expires)
        assert used is not None and first.record_claimed(records.invocation(), used)

        proxy.cut()  # the pooled connections die mid-conversation
        # used before the outage: refused by every worker of the pod during it
        assert first.replay.claim_jti(ISS, "before", expires) is None
        assert second.replay.claim_jti(ISS, "before", expires) is None
        # accepted during the outage: the statement fails, the claim is pending, the record
        # spooled; another worker of the pod refuses the token
        claim = second.replay.claim_jti(ISS, "during", expires)
        during = records.invocation(cards=2)
        assert claim is not None and second.record_claimed(during, claim) is True
        assert second.replay.claim_jti(ISS, "during", expires) is None
        assert first.replay.claim_jti(ISS, "during", expires) is None
        assert second.health() | {"database_errors": 0} == {
            "database": "down",
            "spool_depth": 1,
            "replay_pending": 1,
            "database_errors": 0,
        }

        proxy.restore()
        second.drain_once()
        assert second.health()["replay_pending"] == 0
        assert second.health()["spool_depth"] == 0
        # the jti reached PostgreSQL (another pod refuses it), the record with its cards
        assert other_pod.replay.remember_jti(ISS, "during", expires) is False
        assert invocations_of(url, during) == 1
        cards = "SELECT count(*) FROM issued_card WHERE invocation_id = :i"
        assert scalar_int(url, cards, i=during.id) == 2
    finally:
        for trail in (first, second, other_pod):
            trail.close()


def test_fail_closed_refuses_a_claim_it_cannot_settle_and_records_nothing_of_it(
    url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    trail = worker(proxy.url(url), tmp_path / "pod", replay_fail_closed=True)
    expires = records.in_minutes(5)
    try:
        trail.record_invocation(records.invocation())  # a pooled connection to cut
        claim = trail.replay.claim_jti(ISS, "refused", expires)
        assert claim is not None
        proxy.cut()
        refused = records.invocation()
        with pytest.raises(ReplayUnavailable):
            trail.record_claimed(refused, claim)
        proxy.restore()
        trail.drain_once()
        assert invocations_of(url, refused) == 0
        # the refused call was never accepted: its token may be used once now
        assert trail.replay.remember_jti(ISS, "refused", expires) is True
    finally:
        trail.close()


def test_a_replay_found_by_the_statement_records_nothing(url: str, tmp_path: Path) -> None:
    pod, other_pod = worker(url, tmp_path / "pod-a"), worker(url, tmp_path / "pod-b")
    expires = records.in_minutes(5)
    try:
        assert other_pod.replay.remember_jti(ISS, "used", expires) is True
        claim = pod.replay.claim_jti(ISS, "used", expires)  # this pod has not seen it
        replay = records.invocation(cards=1)
        assert claim is not None and pod.record_claimed(replay, claim) is False
        assert invocations_of(url, replay) == 0
        cards = "SELECT count(*) FROM issued_card WHERE invocation_id = :i"
        assert scalar_int(url, cards, i=replay.id) == 0
    finally:
        pod.close()
        other_pod.close()


def test_a_record_refused_for_good_still_settles_its_jti_and_is_dead_lettered(
    url: str, tmp_path: Path
) -> None:
    pod, other_pod = worker(url, tmp_path / "pod-a"), worker(url, tmp_path / "pod-b")
    expires = records.in_minutes(5)
    bad_card = IssuedCard(uuid=str(uuid.uuid4()), rule_id="r", indicator="bogus", topic="t")
    poisoned = replace(records.invocation(), cards=(bad_card,))  # a CHECK violation
    try:
        claim = pod.replay.claim_jti(ISS, "poisoned", expires)
        assert claim is not None and pod.record_claimed(poisoned, claim) is True
        assert invocations_of(url, poisoned) == 0
        [letter] = read_dead_letters(tmp_path / "pod-a")
        assert (letter.kind, letter.id) == ("invocation", str(poisoned.id))
        assert pod.health()["database"] == "up"  # a permanent failure is no outage
        assert other_pod.replay.remember_jti(ISS, "poisoned", expires) is False
    finally:
        pod.close()
        other_pod.close()


def test_a_locked_invocation_table_still_settles_the_jti_spools_and_answers(
    url: str, tmp_path: Path
) -> None:
    pod, other_pod = worker(url, tmp_path / "pod-a"), worker(url, tmp_path / "pod-b")
    expires = records.in_minutes(5)
    record = records.invocation()
    outcome: list[bool] = []
    try:
        claim = pod.replay.claim_jti(ISS, "locked", expires)
        assert claim is not None
        with table_locked(url, "invocation"):
            call = bounded(lambda: outcome.append(pod.record_claimed(record, claim)))
            returned = not call.is_alive()
            health = pod.health()
        call.join(BOUND_SECONDS)
        assert returned, "the call waited for the table lock"
        assert outcome == [True]
        assert (health["database"], health["spool_depth"]) == ("down", 1)
        assert other_pod.replay.remember_jti(ISS, "locked", expires) is False
        assert pod.drain_once() == 1
        assert invocations_of(url, record) == 1
    finally:
        pod.close()
        other_pod.close()
