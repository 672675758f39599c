"""Command-line groups mounted under ``backpain-cds``: ``db`` (migrations), ``audit`` (read-only).

Both read DATABASE_URL through ``Settings.from_env()``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from service.audit import migrate, partitions
from service.audit.codec import json_default
from service.audit.db import make_engine
from service.audit.report import INDICATORS, AuditEntry, AuditQuery, find_invocations
from service.config import Settings


def _database_url() -> str:
    return Settings.from_env().database_url


def _existing_database_url() -> str:
    """DATABASE_URL for a read-only command: reading never creates a SQLite file."""
    url = _database_url()
    parsed = make_url(url)
    path = parsed.database or ""
    on_disk = path not in ("", ":memory:") and not path.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and on_disk and not Path(path).exists():
        raise click.ClickException(f"no audit database at {path} (DATABASE_URL); nothing to read")
    return url


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
    url = _existing_database_url()
    click.echo(f"current: {migrate.current(url) or 'base'}")
    click.echo(f"head:    {migrate.head()}")


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; without a zone it is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or date-time") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@click.group("audit")
def audit_group() -> None:
    """Read the audit trail (read-only)."""


@audit_group.command("show")
@click.option("--patient", help="Patient reference (Patient/123 or 123).")
@click.option("--since", callback=_instant, help="From this time (inclusive), e.g. 2025-01-31.")
@click.option("--until", callback=_instant, help="Up to this time (exclusive).")
@click.option("--service", help="CDS service id.")
@click.option("--indicator", type=click.Choice(INDICATORS), help="Only calls with such a card.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option(
    "--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def audit_show(
    patient: str | None,
    since: datetime | None,
    until: datetime | None,
    service: str | None,
    indicator: str | None,
    limit: int,
    output: str,
) -> None:
    """What we told whom about which patient, and what they did with it."""
    query = AuditQuery(
        patient=patient,
        since=since,
        until=until,
        service=service,
        indicator=indicator,
        limit=limit,
    )
    settings = Settings.from_env()
    url = _existing_database_url()
    engine = make_engine(url, connect_timeout=settings.db_connect_timeout)
    try:
        entries = find_invocations(engine, query)
    finally:
        engine.dispose()
    if output == "json":
        payload = [entry.to_json() for entry in entries]
        click.echo(json.dumps(payload, default=json_default, indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("no matching invocations")
        return
    for entry in entries:
        click.echo(_table_lines(entry))


def _when(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return value.isoformat()


def _table_lines(entry: AuditEntry) -> str:
    head = (
        f"{_when(entry.occurred_at)}  {entry.patient_ref or '-'}  "
        f"service={entry.service_id or '-'}  hook={entry.hook or '-'}  "
        f"client={entry.client_iss or '-'}  status={entry.http_status}"
    )
    if entry.error_code:
        head += f"  error={entry.error_code}"
    lines = [head, f"    invocation {entry.id}  rules {entry.rules_version or '-'}"]
    if not entry.cards:
        lines.append("    no cards")
    for card in entry.cards:
        lines.append(f"    [{card.indicator}] {card.rule_id} ({card.topic})  card {card.card_uuid}")
        if not card.feedback:
            lines.append("        feedback: none")
        for index, fb in enumerate(card.feedback):  # history; the latest is current
            current = " (current)" if index == len(card.feedback) - 1 else ""
            reason = ""
            if fb.override_reason:
                reason = "  reason: " + json.dumps(fb.override_reason, ensure_ascii=False)
            when = _when(fb.outcome_timestamp)
            lines.append(f"        feedback: {fb.outcome} at {when}{current}{reason}")
    return "\n".join(lines)
