"""Issue 11 finding 2: replay protection around a database outage.

Real PostgreSQL behind a relay the test cuts. Two trails on one spool directory are
two workers of one pod; a trail on another directory, straight to the database, is
another pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from service.audit.factory import create_audit_trail
from service.audit.records import AuditUnavailable, ReplayUnavailable
from service.audit.spooling import SpoolingAuditTrail
from service.config import Settings
from testkit.pg import DatabaseFactory
from tests.integration import records
from tests.integration.proxy import TcpProxy

pytestmark = pytest.mark.integration

ISS = "https://ehr.example.org"


@pytest.fixture
def url(make_database: DatabaseFactory) -> str:
    return make_database()


@pytest.fixture
def proxy(url: str) -> Iterator[TcpProxy]:
    real = make_url(url)
    with TcpProxy(real.host or "127.0.0.1", real.port or 5432) as relay:
        yield relay


def via(proxy: TcpProxy, url: str) -> str:
    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )


def worker(url: str, spool_dir: Path, **settings: object) -> SpoolingAuditTrail:
    """One gunicorn worker's audit trail (its drainer not started: the test drains)."""
    config = Settings(database_url=url, spool_dir=spool_dir, db_connect_timeout=1, **settings)  # type: ignore[arg-type]
    return create_audit_trail(config, start=False)


def test_no_jti_is_accepted_twice_in_a_pod_and_every_one_reaches_postgres(
    url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    pod = tmp_path / "pod-a"
    first, second = worker(via(proxy, url), pod), worker(via(proxy, url), pod)
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
    trail = worker(via(proxy, url), tmp_path / "pod", replay_fail_closed=True)
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
