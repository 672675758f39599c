"""Monthly partitions of ``invocation`` on PostgreSQL: create ahead, empty DEFAULT, archive.

Revision 0002 makes ``invocation`` ``PARTITION BY RANGE (occurred_at)`` with a
``DEFAULT`` partition and one partition per UTC month, ``invocation_yYYYYmMM``.
``maintain`` (``backpain-cds db partitions``, run by a CronJob and by ``db upgrade``)
creates the months ahead, and any month whose rows have landed in ``DEFAULT`` (moving
them into the new partition in the same transaction). It is idempotent and serialised
by an advisory lock, so two runs at once are harmless.

``archive_month`` is retention: it detaches a past month's partition and moves that
month's issued cards and their feedback into standalone tables of the same month, ready
to be dumped and dropped. SQLite (``make run``) has no partitions: both do nothing there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, ForeignKeyConstraint, TextClause, text
from sqlalchemy.sql.schema import SchemaItem

PARENT = "invocation"
DEFAULT_PARTITION = "invocation_default"
#: ``issued_card`` -> ``invocation`` (its definition is read back from the database)
FOREIGN_KEY = "fk_issued_card_invocation_id_invocation"
#: pg_advisory_xact_lock key shared by every partition change ("backpain" in ASCII)
LOCK_KEY = 0x6261636B7061696E
#: months, their DEFAULT partition, and archived months' card and feedback tables
PARTITION_TABLE = re.compile(r"^(invocation|issued_card|card_feedback)_(y\d{4}m\d{2}|default)$")
#: months after the current one that ``maintain`` keeps ready
DEFAULT_MONTHS_AHEAD = 3
_MONTH_TEXT = re.compile(r"^(\d{4})-(\d{2})$")


class PartitionError(RuntimeError):
    """A partition cannot be created or archived as asked (the message says why)."""


def is_partition_table(name: str | None) -> bool:
    """True for a partition or archive table (not part of the models; for autogenerate)."""
    return name is not None and PARTITION_TABLE.match(name) is not None


def include_in_autogenerate(
    item: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic ``include_object`` hook: leave partitions out of the model comparison.

    PostgreSQL lists each partition as a table, and the foreign key to a partitioned
    table once more per partition (its clones); neither is part of the models.
    """
    if type_ == "table":
        return not is_partition_table(name)
    if type_ == "foreign_key_constraint" and isinstance(item, ForeignKeyConstraint):
        return not is_partition_table(item.referred_table.name)
    return True


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC: the span of one partition."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9999:
            raise ValueError(f"not a month: {self.year:04d}-{self.month:02d}")

    @classmethod
    def containing(cls, moment: datetime) -> Month:
        if moment.tzinfo is None:
            raise ValueError(f"need a timezone-aware time, got naive {moment!r}")
        utc = moment.astimezone(UTC)
        return cls(utc.year, utc.month)

    @classmethod
    def parse(cls, value: str) -> Month:
        """``YYYY-MM``."""
        found = _MONTH_TEXT.match(value)
        if found is None:
            raise ValueError(f"expected a month as YYYY-MM, got {value!r}")
        return cls(int(found[1]), int(found[2]))

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the month (exclusive bound)."""
        return self.plus(1).start

    @property
    def suffix(self) -> str:
        return f"y{self.year:04d}m{self.month:02d}"

    @property
    def partition(self) -> str:
        return f"{PARENT}_{self.suffix}"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class MaintenanceReport:
    """What ``maintain`` did. ``applicable`` is False where there are no partitions (SQLite)."""

    applicable: bool
    created: tuple[Month, ...] = ()
    #: rows moved out of DEFAULT into the month created for them
    moved: tuple[tuple[Month, int], ...] = ()
    #: every month partition attached after the run
    months: tuple[Month, ...] = ()


@dataclass(frozen=True)
class ArchivedMonth:
    """A month taken out of the live trail: three standalone tables to dump, then drop."""

    month: Month
    invocation_table: str
    issued_card_table: str
    card_feedback_table: str
    invocations: int
    issued_cards: int
    feedback: int


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- reading the catalogue -------------------------------------------------------------


def require_partitioned(conn: Connection) -> None:
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:table)"), {"table": PARENT}
    ).scalar_one_or_none()
    if kind != "p":
        state = "missing" if kind is None else "a plain table"
        raise PartitionError(
            f"table {PARENT!r} is {state}, not partitioned: run `backpain-cds db upgrade` first"
        )


def attached_months(conn: Connection) -> dict[Month, str]:
    """The month partitions attached to ``invocation``, by month."""
    names = conn.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": PARENT},
    )
    months: dict[Month, str] = {}
    for name in names:
        found = re.fullmatch(rf"{PARENT}_y(\d{{4}})m(\d{{2}})", name)
        if found is not None:
            months[Month(int(found[1]), int(found[2]))] = name
    return months


def months_in_default(conn: Connection) -> list[Month]:
    """The months of the rows waiting in the DEFAULT partition."""
    rows = conn.execute(
        _sql(
            "SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') AS month "
            "FROM {default} ORDER BY month",
            default=DEFAULT_PARTITION,
        )
    )
    return [Month(row.month.year, row.month.month) for row in rows]


# -- creating months -----------------------------------------------------------------------


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _sql(template: str, **identifiers: str) -> TextClause:
    """A statement naming tables (which cannot be bound); values go in as bind parameters."""
    for name, value in identifiers.items():
        if _IDENTIFIER.match(value) is None:
            raise ValueError(f"{name}: {value!r} is not a plain SQL identifier")
    return text(template.format(**identifiers))


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def _bounds(month: Month) -> str:
    """Partition bounds are literals (DDL takes no parameters); built from two integers."""
    return f"FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"


def create_month(conn: Connection, month: Month) -> int | None:
    """Create ``month``'s partition in the caller's transaction; None if it is already there.

    Returns the number of rows moved out of DEFAULT. PostgreSQL refuses a new partition
    while DEFAULT holds rows of its range, and the rows cannot leave DEFAULT while
    ``issued_card``'s foreign key points at them; so, only then: drop the key, create the
    month as a plain table, move the rows, attach it, and add the key back (which checks
    every card again). All in this transaction: a failure leaves everything as it was.
    """
    _lock(conn)
    if month in attached_months(conn):
        return None
    if conn.execute(text("SELECT to_regclass(:t)"), {"t": month.partition}).scalar() is not None:
        raise PartitionError(
            f"{month.partition} exists but is not a partition of {PARENT} (an archived "
            f"month?); rows of {month} stay in {DEFAULT_PARTITION} until it is renamed or dropped"
        )
    span = {"start": month.start, "end": month.end}
    waiting = conn.execute(
        _sql(
            "SELECT count(*) FROM {default} WHERE occurred_at >= :start AND occurred_at < :end",
            default=DEFAULT_PARTITION,
        ),
        span,
    ).scalar_one()
    create = "CREATE TABLE {month} PARTITION OF {parent} FOR VALUES " + _bounds(month)
    if not waiting:
        conn.execute(_sql(create, month=month.partition, parent=PARENT))
        return 0
    foreign_key = conn.execute(
        text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = :name AND conrelid = to_regclass('issued_card')"
        ),
        {"name": FOREIGN_KEY},
    ).scalar_one()
    names = {"parent": PARENT, "month": month.partition, "fk": FOREIGN_KEY}
    conn.execute(_sql("LOCK TABLE {parent}, issued_card IN ACCESS EXCLUSIVE MODE", **names))
    conn.execute(_sql("ALTER TABLE issued_card DROP CONSTRAINT {fk}", **names))
    conn.execute(_sql("CREATE TABLE {month} (LIKE {parent} INCLUDING DEFAULTS)", **names))
    moved = conn.execute(
        _sql(
            "WITH moved AS (DELETE FROM {default} WHERE occurred_at >= :start "
            "AND occurred_at < :end RETURNING *) INSERT INTO {month} SELECT * FROM moved",
            default=DEFAULT_PARTITION,
            month=month.partition,
        ),
        span,
    ).rowcount
    attach = "ALTER TABLE {parent} ATTACH PARTITION {month} FOR VALUES " + _bounds(month)
    conn.execute(_sql(attach, **names))
    conn.exec_driver_sql(f"ALTER TABLE issued_card ADD CONSTRAINT {FOREIGN_KEY} {foreign_key}")
    if moved < waiting:  # more is fine: rows may arrive between the count and the lock
        raise PartitionError(f"{month}: {waiting} rows waited in DEFAULT but {moved} were moved")
    return int(moved)


def maintain(
    engine: Engine, *, months_ahead: int = DEFAULT_MONTHS_AHEAD, now: datetime | None = None
) -> MaintenanceReport:
    """Create this month's and the next ``months_ahead`` months' partitions if missing, and
    a partition for every month with rows in DEFAULT (moving them). Idempotent.

    One short transaction per month created. Raises ``PartitionError`` when the database
    is not at a partitioned revision, or a month cannot be created.
    """
    if months_ahead < 0:
        raise ValueError(f"months_ahead must be 0 or more, got {months_ahead}")
    if engine.dialect.name != "postgresql":
        return MaintenanceReport(applicable=False)
    current = Month.containing(now or utc_now())
    with engine.connect() as conn:
        require_partitioned(conn)
        wanted = {current.plus(n) for n in range(months_ahead + 1)}
        wanted.update(months_in_default(conn))
        missing = sorted(wanted - set(attached_months(conn)))
    created: list[Month] = []
    moved: list[tuple[Month, int]] = []
    for month in missing:
        with engine.begin() as conn:
            rows = create_month(conn, month)
        if rows is None:
            continue  # another run created it meanwhile
        created.append(month)
        if rows:
            moved.append((month, rows))
    with engine.connect() as conn:
        months = tuple(sorted(attached_months(conn)))
    return MaintenanceReport(
        applicable=True, created=tuple(created), moved=tuple(moved), months=months
    )


# -- retention ---------------------------------------------------------------------------


def archive_month(engine: Engine, month: Month, *, now: datetime | None = None) -> ArchivedMonth:
    """Take a past ``month`` out of the live trail, in one transaction.

    Its issued cards move to ``issued_card_<suffix>`` and the feedback on them to
    ``card_feedback_<suffix>`` (same columns; feedback on a card uuid a later call issued
    again stays live), then ``invocation_<suffix>`` is detached: three standalone tables
    to dump (``pg_dump -t``) and drop. Only months before the current one.
    """
    if engine.dialect.name != "postgresql":
        raise PartitionError("the audit trail is partitioned only on PostgreSQL")
    if month >= Month.containing(now or utc_now()):
        raise PartitionError(f"{month} is not in the past: only past months can be archived")
    names = {
        "parent": PARENT,
        "month": month.partition,
        "cards": f"issued_card_{month.suffix}",
        "feedback": f"card_feedback_{month.suffix}",
    }
    span = {"start": month.start, "end": month.end}
    with engine.begin() as conn:
        require_partitioned(conn)
        _lock(conn)
        if month not in attached_months(conn):
            raise PartitionError(f"no partition {month.partition} attached to {PARENT}")
        for table in (names["cards"], names["feedback"]):
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None:
                raise PartitionError(f"{table} already exists: was {month} archived before?")
        conn.execute(
            _sql(
                "CREATE TABLE {cards} AS SELECT * FROM issued_card "
                "WHERE invocation_occurred_at >= :start AND invocation_occurred_at < :end",
                **names,
            ),
            span,
        )
        card_rows = conn.execute(
            text(
                "DELETE FROM issued_card "
                "WHERE invocation_occurred_at >= :start AND invocation_occurred_at < :end"
            ),
            span,
        ).rowcount
        # feedback follows its card out, unless the uuid was issued again by a live call
        feedback_rows = conn.execute(
            _sql(
                "CREATE TABLE {feedback} AS SELECT * FROM card_feedback f "
                "WHERE f.card_uuid IN (SELECT card_uuid FROM {cards}) AND NOT EXISTS "
                "(SELECT 1 FROM issued_card live WHERE live.card_uuid = f.card_uuid)",
                **names,
            )
        ).rowcount
        conn.execute(
            _sql("DELETE FROM card_feedback WHERE id IN (SELECT id FROM {feedback})", **names)
        )
        conn.execute(_sql("ALTER TABLE {parent} DETACH PARTITION {month}", **names))
        invocations = conn.execute(_sql("SELECT count(*) FROM {month}", **names)).scalar_one()
    return ArchivedMonth(
        month=month,
        invocation_table=names["month"],
        issued_card_table=names["cards"],
        card_feedback_table=names["feedback"],
        invocations=int(invocations),
        issued_cards=int(card_rows),
        feedback=int(feedback_rows),
    )
