"""Audit insert cost as the trail grows: 0, 1 million, 10 million invocations.

A dedicated database (created here, dropped at the end) is migrated with Alembic,
then filled in bulk with ``generate_series`` (one issued card per invocation, like a
screen with one red flag). At each size the real write path,
``SpoolingAuditTrail.record_invocation`` (one statement), is timed for a few hundred
realistic records; then what an authenticated hook call wrote before issue 15's change
(``remember_jti``, then the record in a transaction of its own) and what it writes now
(the jti claimed in the pod ledger, settled with the record in one statement:
``record_claimed``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text

from bench.stats import LatencySummary, ratio
from service.audit.factory import create_audit_trail
from service.audit.records import FiredRule, InvocationRecord, IssuedCard
from service.config import Settings

FILL_CHUNK = 500_000
#: Parallel loaders (one PostgreSQL backend, so one core, each).
FILL_CONNECTIONS = max(1, min(4, os.cpu_count() or 1))

_FIRED_RULES_JSON = (
    '[{"rule_id": "cauda-equina-urgent", "rule_version": "1.0.0", "evidence": ['
    '{"linkId": "2.3", "concept": "saddle-anaesthesia", "answer": "LA33-6"}, '
    '{"linkId": "2.1", "concept": "bladder-dysfunction-new", "answer": "LA33-6"}]}]'
)

#: Every generated row lands in the current month (its partition on PostgreSQL), spread
#: evenly between the month's start and now: the partition the service inserts into is as
#: large as it can be, so the cost measured is the worst case for that many rows.
_FILL_SQL = f"""
WITH inserted AS (
  INSERT INTO invocation (
    id, occurred_at, http_status, latency_ms, service_id, hook, hook_instance, client_iss,
    patient_ref, qr_id, qr_version, qr_sha256, questionnaire, rules_version, qr_source,
    fired_rules)
  SELECT gen_random_uuid(),
         date_trunc('month', now())
           + (now() - date_trunc('month', now())) * ((g - 1)::float8 / :total),
         200, 8.5, 'backpain-redflags-patient-view', 'patient-view',
         gen_random_uuid()::text, 'https://ehr.example.org', 'Patient/p' || (g % 200000),
         'qr-' || g, '1', md5(g::text) || md5((g + 1)::text),
         'https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake|1.0.0',
         'backpain-redflags 1.0.0', 'prefetch', '{_FIRED_RULES_JSON}'::jsonb
  FROM generate_series(:first, :last) AS g
  RETURNING id, occurred_at
)
INSERT INTO issued_card (
  card_uuid, invocation_id, invocation_occurred_at, position, rule_id, indicator, topic)
SELECT gen_random_uuid()::text, id, occurred_at, 0, 'cauda-equina-urgent', 'critical',
       'cauda-equina'
FROM inserted
"""


def realistic_record() -> InvocationRecord:
    invocation_id = uuid.uuid4()
    return InvocationRecord(
        id=invocation_id,
        occurred_at=datetime.now(UTC),
        http_status=200,
        latency_ms=8.5,
        service_id="backpain-redflags-patient-view",
        hook="patient-view",
        hook_instance=str(uuid.uuid4()),
        client_iss="https://ehr.example.org",
        patient_ref="Patient/example",
        qr_id="bench-intake",
        qr_version="1",
        qr_sha256=uuid.uuid4().hex + uuid.uuid4().hex,
        questionnaire="https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake|1.0.0",
        rules_version="backpain-redflags 1.0.0",
        qr_source="prefetch",
        fired_rules=(
            FiredRule(
                rule_id="cauda-equina-urgent",
                rule_version="1.0.0",
                evidence=(
                    {"linkId": "2.3", "concept": "saddle-anaesthesia", "answer": "LA33-6"},
                    {"linkId": "2.1", "concept": "bladder-dysfunction-new", "answer": "LA33-6"},
                ),
            ),
        ),
        cards=(
            IssuedCard(
                uuid=str(uuid.uuid4()),
                rule_id="cauda-equina-urgent",
                indicator="critical",
                topic="cauda-equina",
            ),
        ),
    )


#: Tables the bulk fill writes; their secondary indexes and constraints are rebuilt after.
FILLED_TABLES = ("invocation", "issued_card")

_CONSTRAINTS_SQL = """
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
FROM pg_constraint c
WHERE c.conrelid::regclass::text = ANY(:tables) AND c.contype IN ('u', 'f')
  AND c.conparentid = 0
ORDER BY c.contype, c.conname
"""
_INDEXES_SQL = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid::regclass::text = ANY(:tables)
  AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY 1
"""


def _schema_of(conn: Connection) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    tables = list(FILLED_TABLES)
    constraints = [
        (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
        for r in conn.execute(text(_CONSTRAINTS_SQL), {"tables": tables})
    ]
    indexes = [(str(r[0]), str(r[1])) for r in conn.execute(text(_INDEXES_SQL), {"tables": tables})]
    return constraints, indexes


def _fill_chunk(engine: Engine, chunk: tuple[int, int], total: int) -> int:
    first, last = chunk
    with engine.connect() as conn:
        conn.execute(text("SET synchronous_commit = off"))
        conn.execute(text(_FILL_SQL), {"first": first, "last": last, "total": total})
    return last


def fill(url: str, rows: int, already: int, log: Callable[[str], None]) -> float:
    """Add invocations (and their cards) until the table holds ``rows``; returns seconds.

    Secondary indexes and the unique/foreign-key constraints (on a partitioned table: the
    parent's, which own their partitions' copies) are dropped for the load and rebuilt
    afterwards from their own definitions (``pg_get_indexdef``,
    ``pg_get_constraintdef``); the schema is checked to be exactly what it was.
    """
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    start = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SET synchronous_commit = off"))
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
            before = _schema_of(conn)
            constraints, indexes = before
            for table, name, _, _ in constraints:  # foreign keys ("f") sort first
                conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
            for name, _ in indexes:
                conn.execute(text(f"DROP INDEX {name}"))
            chunks = [
                (first, min(rows, first + FILL_CHUNK - 1))
                for first in range(already + 1, rows + 1, FILL_CHUNK)
            ]
            with ThreadPoolExecutor(max_workers=FILL_CONNECTIONS) as pool:
                for last in pool.map(lambda c: _fill_chunk(engine, c, rows), chunks):
                    log(
                        f"  audit fill: rows up to {last:,} of {rows:,} written "
                        f"({time.perf_counter() - start:.0f} s)"
                    )
            for _, definition in indexes:
                conn.execute(text(definition))
            for table, name, definition, _ in reversed(constraints):  # unique before foreign
                conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
            if _schema_of(conn) != before:
                raise RuntimeError("audit bench: the rebuilt schema differs from the migrated one")
            log(f"  audit fill: indexes rebuilt ({time.perf_counter() - start:.0f} s)")
            conn.execute(text("ANALYZE invocation"))
            conn.execute(text("ANALYZE issued_card"))
            conn.execute(text("CHECKPOINT"))
    finally:
        engine.dispose()
    return time.perf_counter() - start


def time_inserts(url: str, spool_dir: Path, count: int) -> dict[str, Any]:
    """Per-call milliseconds of record_invocation and remember_jti on the real trail."""
    settings = Settings(database_url=url, spool_dir=spool_dir)
    trail = create_audit_trail(settings, start=False)
    try:
        for _ in range(20):  # warm the pool and the caches
            trail.record_invocation(realistic_record())
        invocation_ms: list[float] = []
        before_ms: list[float] = []
        claimed_ms: list[float] = []
        expires = datetime.now(UTC) + timedelta(minutes=5)
        issuer = "https://ehr.example.org"
        for _ in range(count):  # a call without a token: the invocation and its cards
            start = time.perf_counter()
            trail.record_invocation(realistic_record())
            invocation_ms.append((time.perf_counter() - start) * 1000)
        for _ in range(count):  # an authenticated call the way before issue 15's change:
            start = time.perf_counter()  # the jti, then the record, two transactions
            trail.replay.remember_jti(issuer, str(uuid.uuid4()), expires)
            trail.store.write([realistic_record()])
            before_ms.append((time.perf_counter() - start) * 1000)
        for _ in range(count):  # and now: claimed in the pod ledger, settled with the record
            start = time.perf_counter()
            claim = trail.replay.claim_jti(issuer, str(uuid.uuid4()), expires)
            if claim is None or not trail.record_claimed(realistic_record(), claim):
                raise RuntimeError("audit bench: a fresh jti was refused")
            claimed_ms.append((time.perf_counter() - start) * 1000)
        if not trail.database_up or trail.health()["spool_depth"]:
            raise RuntimeError("audit bench: the database went down during the measurement")
        return {
            "record_invocation_ms": LatencySummary.of(invocation_ms).as_dict(),
            "jti_then_record_ms": LatencySummary.of(before_ms).as_dict(),
            "jti_and_record_ms": LatencySummary.of(claimed_ms).as_dict(),
        }
    finally:
        trail.close()


def row_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM invocation")).scalar_one())
    finally:
        engine.dispose()


def run(
    server_url: str,
    work_dir: Path,
    sizes: Sequence[int],
    *,
    inserts: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from testkit.pg import DatabaseFactory

    factory = DatabaseFactory(server_url)
    url = factory()
    levels: list[dict[str, Any]] = []
    try:
        present = 0
        for size in sorted(sizes):
            fill_seconds = fill(url, size, present, log) if size > present else 0.0
            present = row_count(url)
            timing = time_inserts(url, work_dir / f"audit-spool-{size}", inserts)
            levels.append({"rows": size, "rows_present": present, "fill_s": fill_seconds} | timing)
            present = row_count(url)
            log(
                f"  audit at {size:,} rows: record_invocation p50 "
                f"{timing['record_invocation_ms']['p50']:.2f} ms"
            )
    finally:
        factory.drop_all()
    base = levels[0]["record_invocation_ms"]["p50"] if levels else 0.0
    for level in levels:
        level["p50_vs_empty"] = ratio(level["record_invocation_ms"]["p50"], base)
    return {"inserts_per_level": inserts, "levels": levels}
