"""Issue 11 finding 10: the spool has a size cap, with a metric hook and one log line.

Real PostgreSQL behind a relay the test cuts: while it is down, records fill the
spool up to ``AUDIT_SPOOL_MAX_BYTES``; past it they are dropped (counted, said once),
never written to disk; once the spool drains, records are kept again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from service.audit.factory import create_audit_trail
from service.audit.spool import SpoolEntry
from service.audit.state import AuditHooks
from service.config import Settings
from testkit.pg import DatabaseFactory
from tests.integration import records
from tests.integration.proxy import TcpProxy

pytestmark = pytest.mark.integration


def test_records_past_the_cap_are_dropped_counted_and_said_once(
    make_database: DatabaseFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_url(make_database())
    written = [records.invocation(cards=1) for _ in range(10)]
    line = max(len(SpoolEntry(r).to_line()) for r in written)
    dropped: list[str] = []
    with TcpProxy.in_front_of(url) as proxy:
        settings = Settings(
            database_url=proxy.url(url),
            spool_dir=tmp_path / "spool",
            spool_max_bytes=3 * line,
            db_connect_timeout=1,
        )
        trail = create_audit_trail(
            settings, hooks=AuditHooks(on_spool_full=dropped.append), start=False
        )
        try:
            proxy.cut()
            for record in written:
                trail.record_invocation(record)  # never raises
            assert trail.health()["spool_depth"] == 3
            assert dropped == ["invocation"] * 7
            on_disk = sum(p.stat().st_size for p in (tmp_path / "spool").glob("spool-*"))
            assert on_disk <= settings.spool_max_bytes
            full = [r for r in caplog.records if "SPOOL FULL" in r.getMessage()]
            assert len(full) == 1 and full[0].levelno == logging.ERROR

            proxy.restore()
            assert trail.drain_once() == 3
            proxy.cut()
            late = records.invocation()
            trail.record_invocation(late)  # room again: spooled, not dropped
            assert trail.health()["spool_depth"] == 1
            assert len(dropped) == 7
            assert "below its cap again; 7 record(s) were dropped" in caplog.text
        finally:
            proxy.restore()
            trail.close()


def test_the_cap_is_a_setting() -> None:
    assert Settings.from_env({"AUDIT_SPOOL_MAX_BYTES": "1048576"}).spool_max_bytes == 1048576
    assert Settings.from_env({}).spool_max_bytes == 256 * 1024 * 1024
