"""``backpain-cds audit ...``: read the audit trail (read-only), and what never reached it.

``show`` reads DATABASE_URL; ``dead-letters`` reads this pod's AUDIT_SPOOL_DIR.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import click
from sqlalchemy.engine import Engine, make_url

from service.audit.codec import json_default
from service.audit.db import make_engine
from service.audit.deadletter import DeadLetter, read_dead_letters
from service.audit.report import AuditEntry, AuditQuery, find_invocations, find_refusals
from service.config import Settings
from service.engine import INDICATORS


def existing_database_url() -> str:
    """DATABASE_URL for a read-only command: reading never creates a SQLite file."""
    url = Settings.from_env().database_url
    parsed = make_url(url)
    path = parsed.database or ""
    on_disk = path not in ("", ":memory:") and not path.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and on_disk and not Path(path).exists():
        raise click.ClickException(f"no audit database at {path} (DATABASE_URL); nothing to read")
    return url


@contextmanager
def _audit_database(settings: Settings) -> Iterator[Engine]:
    """An engine on the audit database a read-only command reads (never created here)."""
    engine = make_engine(existing_database_url(), connect_timeout=settings.db_connect_timeout)
    try:
        yield engine
    finally:
        engine.dispose()


def _echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, default=json_default, indent=2, ensure_ascii=False))


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
    everyone = patient is None and service is None and indicator is None
    with _audit_database(settings) as engine:
        entries = find_invocations(engine, query)
        refusals = find_refusals(engine, since, until) if everyone and output == "table" else []
    if output == "json":
        _echo_json([entry.to_json() for entry in entries])
        return
    if not entries:
        click.echo("no matching invocations")
    for entry in entries:
        click.echo(_table_lines(entry))
    if refusals:
        calls = sum(r.count for r in refusals)
        clients = len({r.client_key for r in refusals})
        click.echo(
            f"refused before authentication: {calls} call(s) from {clients} client(s) "
            "(backpain-cds audit refusals)"
        )
    letters = read_dead_letters(settings.spool_dir)
    if letters:
        click.echo(
            f"{len(letters)} audit record(s) never reached the database: dead-lettered in "
            f"{settings.spool_dir} (backpain-cds audit dead-letters)"
        )


@audit_group.command("refusals")
@click.option("--since", callback=_instant, help="From this time (inclusive), e.g. 2025-01-31.")
@click.option("--until", callback=_instant, help="Up to this time (exclusive).")
@click.option(
    "--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def audit_refusals(since: datetime | None, until: datetime | None, output: str) -> None:
    """Calls refused before anyone was trusted (401; the portal's 403 and 429), counted per
    client, most first."""
    with _audit_database(Settings.from_env()) as engine:
        refusals = find_refusals(engine, since, until)
    if output == "json":
        _echo_json([refusal.to_json() for refusal in refusals])
        return
    if not refusals:
        click.echo("no refused calls")
    for r in refusals:
        click.echo(
            f"{r.count:>8}  status={r.http_status}  client={r.client_key}  "
            f"{_when(r.first_at)} .. {_when(r.last_at)}"
        )


@audit_group.command("dead-letters")
@click.option(
    "--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def audit_dead_letters(output: str) -> None:
    """Records the database refused for good (kept in AUDIT_SPOOL_DIR, on this pod)."""
    spool_dir = Settings.from_env().spool_dir
    letters = read_dead_letters(spool_dir)
    if output == "json":
        _echo_json([letter.to_json() for letter in letters])
        return
    if not letters:
        click.echo(f"no dead letters in {spool_dir}")
    for letter in letters:
        click.echo(_dead_letter_line(letter))


def _dead_letter_line(letter: DeadLetter) -> str:
    when = _when(letter.at) if letter.at else "-"
    return f"{when}  {letter.kind}  {letter.id or '-'}  {letter.reason}"


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
