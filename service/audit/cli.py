"""Command-line groups mounted under ``backpain-cds``: ``db`` (migrations), ``audit`` (read-only).

Both read DATABASE_URL through ``Settings.from_env()``; ``audit`` lives in ``audit_cli.py``.
"""

from __future__ import annotations

import click

from service.audit import migrate, partitions
from service.audit.audit_cli import audit_group, existing_database_url
from service.audit.db import make_engine
from service.config import Settings

__all__ = ["audit_group", "db_group"]


def _database_url() -> str:
    return Settings.from_env().database_url


@click.group("db")
def db_group() -> None:
    """Audit database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Migrate DATABASE_URL up to REVISION (at head, also create the months ahead)."""
    url = _database_url()
    migrate.upgrade(url, revision)
    now_at = migrate.current(url)
    click.echo(f"audit database at revision {now_at or 'base'}")
    if now_at == migrate.head():
        _echo_maintenance(_maintain(url, partitions.DEFAULT_MONTHS_AHEAD))


@db_group.command("partitions")
@click.option(
    "--months-ahead",
    type=click.IntRange(min=0, max=120),
    default=partitions.DEFAULT_MONTHS_AHEAD,
    show_default=True,
    help="Months after the current one that must have a partition.",
)
def db_partitions(months_ahead: int) -> None:
    """Create missing monthly partitions of the audit trail (PostgreSQL); idempotent.

    Rows that landed in the DEFAULT partition are moved into their month's new partition.
    """
    report = _maintain(_database_url(), months_ahead)
    if not report.applicable:
        click.echo("audit partitions: PostgreSQL only; this database keeps a plain table")
    _echo_maintenance(report)


@db_group.command("archive-month")
@click.argument("month")
@click.confirmation_option(
    prompt="This takes the month's invocations, cards and feedback out of the live trail. Continue?"
)
def db_archive_month(month: str) -> None:
    """Detach a past MONTH (YYYY-MM) for retention: dump its tables, then drop them."""
    try:
        wanted = partitions.Month.parse(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="MONTH") from exc
    engine = make_engine(_database_url())
    try:
        archived = partitions.archive_month(engine, wanted)
    except partitions.PartitionError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(
        f"{archived.month} detached: {archived.invocation_table} ({archived.invocations} "
        f"invocations), {archived.issued_card_table} ({archived.issued_cards} cards), "
        f"{archived.card_feedback_table} ({archived.feedback} feedback); "
        "dump them (pg_dump -t), then drop them"
    )


def _maintain(url: str, months_ahead: int) -> partitions.MaintenanceReport:
    engine = make_engine(url)
    try:
        return partitions.maintain(engine, months_ahead=months_ahead)
    except partitions.PartitionError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()


def _echo_maintenance(report: partitions.MaintenanceReport) -> None:
    if not report.applicable:
        return  # SQLite: a plain table, nothing to partition
    moved = dict(report.moved)
    for month in report.created:
        note = f" ({moved[month]} rows moved from the DEFAULT partition)" if month in moved else ""
        click.echo(f"created partition {month.partition}{note}")
    span = f"{report.months[0]} to {report.months[-1]}" if report.months else "none"
    click.echo(f"audit partitions: {len(report.months)} months ({span}) + DEFAULT")


@db_group.command("downgrade")
@click.option("--revision", default="base", show_default=True, help="Target revision.")
@click.confirmation_option(prompt="Downgrading can drop audit records. Continue?")
def db_downgrade(revision: str) -> None:
    """Migrate DATABASE_URL down to REVISION (base drops the audit tables)."""
    url = _database_url()
    migrate.downgrade(url, revision)
    click.echo(f"audit database at revision {migrate.current(url) or 'base'}")


@db_group.command("current")
def db_current() -> None:
    """Print the revision DATABASE_URL is at, and the newest one available."""
    url = existing_database_url()
    click.echo(f"current: {migrate.current(url) or 'base'}")
    click.echo(f"head:    {migrate.head()}")
