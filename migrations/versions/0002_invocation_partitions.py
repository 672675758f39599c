"""Partition ``invocation`` by month on PostgreSQL; ``issued_card`` carries the invocation time.

PostgreSQL: ``invocation`` is recreated as ``PARTITION BY RANGE (occurred_at)`` with
primary key ``(id, occurred_at)`` (every unique key of a partitioned table must hold the
partition key), a ``DEFAULT`` partition (an insert never fails for lack of a month) and
one partition ``invocation_yYYYYmMM`` per month that holds rows and for this month and
the next three. Rows are copied across with their ``seq`` (the arrival counter keeps its
sequence). ``issued_card.invocation_occurred_at`` is added and back-filled, and the
foreign key becomes ``(invocation_id, invocation_occurred_at)``; a trigger fills the
column for cards inserted without it (the previous release's pods, during a roll-out).

SQLite (``make run``): ``invocation`` stays a plain table; only the new ``issued_card``
column is added (so both back ends store the same rows). SQLite cannot add a NOT NULL
column without a default: the epoch default is never used, the store always writes it.

Downgrade: back to revision 0001's plain tables, rows kept. Months detached for
archiving (standalone ``invocation_yYYYYmMM`` tables) are not touched.

Revision ID: 0002_invocation_partitions
Revises: 0001_audit_trail
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_invocation_partitions"
down_revision: str | Sequence[str] | None = "0001_audit_trail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
SEQUENCE = "invocation_seq_seq"  # created by 0001's bigserial; it keeps counting
FK = "fk_issued_card_invocation_id_invocation"
MONTHS_AHEAD = 3
FILL_FUNCTION = "issued_card_fill_invocation_occurred_at"
#: every column but ``seq``, in 0001's order
COLUMNS = (
    "id", "occurred_at", "recorded_at", "http_status", "latency_ms", "service_id", "hook",
    "hook_instance", "client_iss", "tenant", "patient_ref", "encounter_ref", "qr_id",
    "qr_version", "qr_sha256", "questionnaire", "rules_version", "qr_source", "fired_rules",
    "error_code", "error_detail",
)  # fmt: skip


def invocation_columns() -> list[sa.Column[object]]:
    """``invocation``'s columns as in 0001, ``seq`` drawing from the kept sequence."""
    return [
        sa.Column(
            "seq", sa.BigInteger(), server_default=sa.text(f"nextval('{SEQUENCE}')"), nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=True),
        sa.Column("hook", sa.Text(), nullable=True),
        sa.Column("hook_instance", sa.Text(), nullable=True),
        sa.Column("client_iss", sa.Text(), nullable=True),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("patient_ref", sa.Text(), nullable=True),
        sa.Column("encounter_ref", sa.Text(), nullable=True),
        sa.Column("qr_id", sa.Text(), nullable=True),
        sa.Column("qr_version", sa.Text(), nullable=True),
        sa.Column("qr_sha256", sa.String(64), nullable=True),
        sa.Column("questionnaire", sa.Text(), nullable=True),
        sa.Column("rules_version", sa.Text(), nullable=True),
        sa.Column("qr_source", sa.Text(), nullable=True),
        sa.Column("fired_rules", JSON, nullable=False),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
    ]


def month_starts(first: datetime, last: datetime) -> list[datetime]:
    """The first instant (UTC) of every month from ``first``'s to ``last``'s, inclusive."""
    year, month = first.year, first.month
    starts = []
    while (year, month) <= (last.year, last.month):
        starts.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return starts


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def execute(statement: str) -> None:
    op.execute(sa.text(statement))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        sqlite_upgrade()
        return
    execute(f"ALTER TABLE issued_card DROP CONSTRAINT {FK}")
    execute("ALTER TABLE invocation RENAME TO invocation_0001")
    execute("ALTER TABLE invocation_0001 DROP CONSTRAINT uq_invocation_id")
    execute("ALTER TABLE invocation_0001 DROP CONSTRAINT pk_invocation")
    execute("DROP INDEX ix_invocation_occurred_at")
    execute("DROP INDEX ix_invocation_patient_ref_occurred_at")
    execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY NONE")

    op.create_table(
        "invocation",
        *invocation_columns(),
        sa.PrimaryKeyConstraint("id", "occurred_at", name="pk_invocation"),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY invocation.seq")
    op.create_index("ix_invocation_occurred_at", "invocation", ["occurred_at"])
    op.create_index(
        "ix_invocation_patient_ref_occurred_at", "invocation", ["patient_ref", "occurred_at"]
    )
    execute("CREATE TABLE invocation_default PARTITION OF invocation DEFAULT")
    now = datetime.now(UTC)
    stored = op.get_bind().execute(
        sa.text(
            "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') "
            "FROM invocation_0001"
        )
    )
    months = {datetime(m.year, m.month, 1, tzinfo=UTC) for (m,) in stored}
    months.update(month_starts(now, add_months(now, MONTHS_AHEAD)))
    for start in sorted(months):
        end = add_months(start, 1)
        execute(
            f"CREATE TABLE invocation_y{start:%Y}m{start:%m} PARTITION OF invocation "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    columns = ", ".join(("seq", *COLUMNS))
    execute(
        f"INSERT INTO invocation ({columns}) SELECT {columns} FROM invocation_0001 ORDER BY seq"  # noqa: S608 (constant names)
    )
    execute("DROP TABLE invocation_0001")

    op.add_column("issued_card", sa.Column("invocation_occurred_at", TS, nullable=True))
    execute(
        "UPDATE issued_card SET invocation_occurred_at = invocation.occurred_at "
        "FROM invocation WHERE invocation.id = issued_card.invocation_id"
    )
    op.alter_column("issued_card", "invocation_occurred_at", nullable=False)
    op.create_foreign_key(
        FK,
        "issued_card",
        "invocation",
        ["invocation_id", "invocation_occurred_at"],
        ["id", "occurred_at"],
        ondelete="RESTRICT",
    )
    # Pods of the previous release (0001's code) insert cards without the new column
    # while a rolling update runs: fill it from their invocation instead of refusing.
    execute(
        f"CREATE FUNCTION {FILL_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "  # noqa: S608
        "SELECT occurred_at INTO NEW.invocation_occurred_at FROM invocation "
        "WHERE id = NEW.invocation_id ORDER BY occurred_at DESC LIMIT 1; RETURN NEW; END $$"
    )
    execute(
        f"CREATE TRIGGER {FILL_FUNCTION} BEFORE INSERT ON issued_card FOR EACH ROW "
        f"WHEN (NEW.invocation_occurred_at IS NULL) EXECUTE FUNCTION {FILL_FUNCTION}()"
    )


def sqlite_upgrade() -> None:
    op.add_column(
        "issued_card",
        sa.Column(
            "invocation_occurred_at",
            TS,
            nullable=False,
            server_default=sa.text("'1970-01-01 00:00:00.000000'"),
        ),
    )
    execute(
        "UPDATE issued_card SET invocation_occurred_at = (SELECT invocation.occurred_at "
        "FROM invocation WHERE invocation.id = issued_card.invocation_id)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        # native DROP COLUMN (SQLite >= 3.35): a batch copy would trip card_feedback's key
        execute("ALTER TABLE issued_card DROP COLUMN invocation_occurred_at")
        return
    duplicated = op.get_bind().execute(
        sa.text("SELECT id FROM invocation GROUP BY id HAVING count(*) > 1 LIMIT 5")
    )
    ids = [str(row[0]) for row in duplicated]
    if ids:
        raise RuntimeError(
            "cannot downgrade to 0001: invocation ids stored more than once with different "
            f"occurred_at (0001 requires unique ids), e.g. {ids}"
        )
    execute(f"DROP TRIGGER {FILL_FUNCTION} ON issued_card")
    execute(f"DROP FUNCTION {FILL_FUNCTION}()")
    execute(f"ALTER TABLE issued_card DROP CONSTRAINT {FK}")
    op.drop_column("issued_card", "invocation_occurred_at")
    execute("ALTER TABLE invocation RENAME TO invocation_0002")
    execute("ALTER TABLE invocation_0002 DROP CONSTRAINT pk_invocation")
    execute("DROP INDEX ix_invocation_occurred_at")
    execute("DROP INDEX ix_invocation_patient_ref_occurred_at")
    execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY NONE")

    op.create_table(
        "invocation",
        *invocation_columns(),
        sa.PrimaryKeyConstraint("seq", name="pk_invocation"),
        sa.UniqueConstraint("id", name="uq_invocation_id"),
    )
    execute(f"ALTER SEQUENCE {SEQUENCE} OWNED BY invocation.seq")
    columns = ", ".join(("seq", *COLUMNS))
    execute(
        f"INSERT INTO invocation ({columns}) SELECT {columns} FROM invocation_0002 ORDER BY seq"  # noqa: S608 (constant names)
    )
    execute("DROP TABLE invocation_0002")  # with its partitions
    op.create_index("ix_invocation_occurred_at", "invocation", ["occurred_at"])
    op.create_index(
        "ix_invocation_patient_ref_occurred_at", "invocation", ["patient_ref", "occurred_at"]
    )
    op.create_foreign_key(
        FK, "issued_card", "invocation", ["invocation_id"], ["id"], ondelete="RESTRICT"
    )
