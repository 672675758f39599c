"""Which database failures are outages and which blame the record (no database needed)."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
from sqlalchemy.exc import DBAPIError, StatementError, TimeoutError

from service.audit.errors import Failure, classify, describe

SECRET = "Patient/very-secret-id"


def wrapped(orig: Exception) -> DBAPIError:
    """As SQLAlchemy raises a driver error: with the SQL and its parameters."""
    return DBAPIError.instance(
        "INSERT INTO invocation (patient_ref) VALUES (%(patient_ref)s)",
        {"patient_ref": SECRET},
        orig,
        psycopg.Error,
    )


@pytest.mark.parametrize(
    ("orig", "expected"),
    [
        (psycopg.errors.ProgramLimitExceeded("index row size 4016 exceeds maximum"), "permanent"),
        (psycopg.errors.StringDataRightTruncation("value too long"), "permanent"),
        (psycopg.errors.InvalidTextRepresentation(f"invalid input: {SECRET}"), "permanent"),
        (psycopg.errors.CheckViolation("new row violates check constraint"), "permanent"),
        (psycopg.errors.ForeignKeyViolation(f"Key (card_uuid)=({SECRET})"), "permanent"),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), "transient"),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), "transient"),
        (psycopg.errors.AdminShutdown("terminating connection"), "transient"),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), "transient"),
        (psycopg.errors.UndefinedTable('relation "invocation" does not exist'), "transient"),
        (psycopg.errors.DiskFull("could not extend file"), "transient"),
        (psycopg.errors.SerializationFailure("could not serialize"), "transient"),
        (psycopg.OperationalError("connection failed: Connection refused"), "transient"),
    ],
)
def test_classify(orig: Exception, expected: str) -> None:
    assert classify(wrapped(orig)) is Failure(expected)


def test_other_failures() -> None:
    assert classify(TimeoutError("QueuePool limit reached")) is Failure.TRANSIENT
    naive = StatementError("bind", "INSERT ...", {"occurred_at": SECRET}, ValueError(SECRET))
    assert classify(naive) is Failure.PERMANENT
    assert classify(UnicodeEncodeError("utf-8", SECRET, 0, 1, "surrogates")) is Failure.PERMANENT


def test_a_description_never_holds_sql_or_values() -> None:
    refused = wrapped(psycopg.errors.ForeignKeyViolation(f"Key (card_uuid)=({SECRET})"))
    assert SECRET in str(refused)  # what SQLAlchemy would print...
    text = describe(refused)
    assert text == "IntegrityError (psycopg ForeignKeyViolation, SQLSTATE 23503)"
    naive = StatementError("bind", "INSERT ...", {"occurred_at": SECRET}, ValueError(SECRET))
    assert describe(naive) == "StatementError (ValueError)"
    assert describe(UnicodeEncodeError("utf-8", SECRET, 0, 1, "surrogates")) == (
        "UnicodeEncodeError"
    )
    unreachable = wrapped(psycopg.OperationalError("connection failed: Connection refused"))
    assert describe(unreachable) == (
        "OperationalError (psycopg OperationalError, connection failed: Connection refused)"
    )
