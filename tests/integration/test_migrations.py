"""The Alembic migrations are under test: up from empty, down to base, up again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.audit import migrate
from service.audit.models import metadata
from service.audit.partitions import include_in_autogenerate, is_partition_table
from testkit.pg import DatabaseFactory

pytestmark = pytest.mark.integration

TABLES_0001 = {"invocation", "issued_card", "card_feedback", "used_jti"}
AUDIT_TABLES = TABLES_0001 | {"refused_call"}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        names = set(inspect(engine).get_table_names()) - {"alembic_version"}
        return {name for name in names if not is_partition_table(name)}
    finally:
        engine.dispose()


def schema_drift(url: str) -> list[Any]:
    """What Alembic autogenerate would still change: the models and migrations must agree."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_in_autogenerate}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def drift_summary(drift: list[Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    """(operation, table, columns) of constraint-level drift."""
    return {
        (op, constraint.table.name, tuple(constraint.columns.keys())) for op, constraint in drift
    }


#: SQLite (``make run``) keeps 0001's plain ``invocation`` (seq primary key, unique id) and
#: its single-column foreign key: the models describe PostgreSQL's partitioned shape.
SQLITE_ONLY_DIFFERENCES = {
    ("remove_constraint", "invocation", ("id",)),
    ("remove_fk", "issued_card", ("invocation_id",)),
    ("add_fk", "issued_card", ("invocation_id", "invocation_occurred_at")),
}


def test_postgres_upgrade_downgrade_upgrade(make_database: DatabaseFactory) -> None:
    url = make_database(migrated=False)
    assert migrate.current(url) is None
    assert tables(url) == set()

    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head() == "0005_refused_call"
    assert tables(url) == AUDIT_TABLES
    assert schema_drift(url) == []

    migrate.downgrade(url, "0001_audit_trail")
    assert tables(url) == TABLES_0001
    migrate.upgrade(url)
    assert schema_drift(url) == []

    migrate.downgrade(url)
    assert migrate.current(url) is None
    assert tables(url) == set()

    migrate.upgrade(url)
    assert tables(url) == AUDIT_TABLES


def test_postgres_column_types_are_native(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("invocation")}
    finally:
        engine.dispose()
    assert str(columns["id"]) == "UUID"
    assert str(columns["occurred_at"]) == "TIMESTAMP"  # with time zone, checked below
    assert getattr(columns["occurred_at"], "timezone", None) is True
    assert str(columns["fired_rules"]) == "JSONB"


def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    """``make run`` uses SQLite; the same migrations must work there."""
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert tables(url) == AUDIT_TABLES
    assert drift_summary(schema_drift(url)) == SQLITE_ONLY_DIFFERENCES
    migrate.downgrade(url)
    assert tables(url) == set()
    migrate.upgrade(url)
    assert tables(url) == AUDIT_TABLES


def test_no_column_can_hold_a_token(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        inspector = inspect(engine)
        names = {
            column["name"] for table in AUDIT_TABLES for column in inspector.get_columns(table)
        }
    finally:
        engine.dispose()
    assert not {n for n in names if "token" in n or "jwt" in n or "authorization" in n}
