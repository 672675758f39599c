"""``backpain-cds db ...`` and ``backpain-cds audit show`` on a real database."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.audit import migrate
from service.audit.cli import audit_group, db_group
from service.audit.db import make_engine, read_only
from service.audit.spooling import SpoolingAuditTrail
from testkit.pg import DatabaseFactory
from tests.integration import records

pytestmark = pytest.mark.integration


def show(url: str, *args: str) -> str:
    result = CliRunner().invoke(audit_group, ["show", *args], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


def test_db_commands_migrate_and_report(make_database: DatabaseFactory) -> None:
    url = make_database(migrated=False)
    runner = CliRunner()
    env = {"DATABASE_URL": url}
    current = runner.invoke(db_group, ["current"], env=env)
    assert current.exit_code == 0, current.output
    assert "current: base" in current.output
    up = runner.invoke(db_group, ["upgrade"], env=env)
    assert up.exit_code == 0, up.output
    assert f"at revision {migrate.head()}" in up.output
    assert "audit partitions: 4 months" in up.output
    refused = runner.invoke(db_group, ["downgrade"], env=env, input="n\n")
    assert refused.exit_code != 0
    down = runner.invoke(db_group, ["downgrade", "--yes"], env=env)
    assert down.exit_code == 0, down.output
    assert "at revision base" in down.output


def test_audit_show_answers_who_was_told_what(
    audit_trail: SpoolingAuditTrail, database_url: str
) -> None:
    patient = f"Patient/{uuid.uuid4().hex[:8]}"
    told = records.invocation(cards=2, patient=patient)
    quiet = records.invocation(cards=0, patient=patient, http_status=200)
    elsewhere = records.invocation(cards=1)
    for record in (told, quiet, elsewhere):
        audit_trail.record_invocation(record)
    critical_card = told.cards[0]
    audit_trail.record_feedback([records.feedback(critical_card.uuid)])

    table = show(database_url, "--patient", patient)
    assert patient in table
    assert f"[critical] rule-0 (cauda-equina)  card {critical_card.uuid}" in table
    assert "feedback: overridden at 2025-11-24 09:30:00Z" in table
    assert "Patient declined" in table
    assert "no cards" in table
    assert str(elsewhere.id) not in table

    as_json = json.loads(show(database_url, "--patient", patient.split("/")[1], "--format", "json"))
    assert [entry["id"] for entry in as_json] == [str(told.id), str(quiet.id)]
    assert as_json[0]["cards"][0]["feedback"][0]["outcome"] == "overridden"
    assert as_json[0]["fired_rules"][0]["evidence"] == [
        {"linkId": "saddle-numbness", "answer": "yes"}
    ]

    critical_only = json.loads(
        show(database_url, "--patient", patient, "--indicator", "critical", "--format", "json")
    )
    assert [entry["id"] for entry in critical_only] == [str(told.id)]

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert show(database_url, "--patient", patient, "--since", later) == (
        "no matching invocations\n"
    )
    assert show(database_url, "--patient", patient, "--service", "another-service") == (
        "no matching invocations\n"
    )


def test_audit_show_rejects_a_bad_date(database_url: str) -> None:
    result = CliRunner().invoke(
        audit_group, ["show", "--since", "last tuesday"], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 2
    assert "not an ISO 8601 date" in result.output


def test_audit_show_cannot_write(database_url: str) -> None:
    """The auditor's connection is read-only at the database level."""
    engine = make_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="read-only transaction"), read_only(engine) as conn:
            conn.execute(text("DELETE FROM used_jti"))
    finally:
        engine.dispose()


def test_every_call_keeps_the_cards_it_returned_when_a_hook_instance_repeats(
    audit_trail: SpoolingAuditTrail, database_url: str
) -> None:
    """Issue 11 finding 4(a): card uuids come from hookInstance + rule, so they repeat."""
    patient = f"Patient/{uuid.uuid4().hex[:8]}"
    first = records.invocation(cards=2, patient=patient)
    calls = [first] + [
        dataclasses.replace(
            records.invocation(patient=patient),
            hook_instance=first.hook_instance,
            cards=first.cards,
            fired_rules=first.fired_rules,
        )
        for _ in range(2)
    ]
    for call in calls:
        audit_trail.record_invocation(call)
    audit_trail.record_feedback([records.feedback(first.cards[0].uuid)])

    shown = json.loads(show(database_url, "--patient", patient, "--format", "json"))
    assert [entry["id"] for entry in shown] == [str(call.id) for call in calls]
    for entry in shown:
        assert [c["card_uuid"] for c in entry["cards"]] == [c.uuid for c in first.cards]
        assert entry["cards"][0]["feedback"][0]["outcome"] == "overridden"
    critical = json.loads(
        show(database_url, "--patient", patient, "--indicator", "critical", "--format", "json")
    )
    assert [entry["id"] for entry in critical] == [str(call.id) for call in calls]
    assert "no cards" not in show(database_url, "--patient", patient)
