"""What a failed audit database operation means, and how to name it without leaking data.

``classify``: *transient* (the database is unavailable: connection lost or refused,
timeouts, lock timeouts, shutdown, out of resources, schema not migrated: the record
waits in the spool) or *permanent* (the database refuses this record and would refuse
it again: data exceptions, constraint violations, program limits such as an index row
too large: the record goes to the dead-letter store and nothing else stops).

``describe``: the exception class, SQLSTATE and the table/constraint/column it names.
Never the SQL text, never its parameters, never the server's message (which can quote
values): SQLAlchemy's ``str(exc)`` holds all three and must not reach a log.
"""

from __future__ import annotations

import enum

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)


class Failure(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


#: SQLSTATE classes that blame the record, not the database: cardinality (21), data
#: exceptions (22: bad value, out of range, bad text or JSON), integrity constraint
#: violations (23), program limits exceeded (54: e.g. an index row over the btree
#: maximum). Every other class (08 connection, 25 read-only after a failover, 40
#: rollbacks, 42 schema not migrated, 53 resources, 55P03 lock timeout, 57014 statement
#: timeout, 57P0x shutdown, 58 I/O, ...) means the database is unavailable for now.
PERMANENT_SQLSTATE_CLASSES = frozenset({"21", "22", "23", "54"})
_MAX_CONNECTION_MESSAGE = 200


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a wrapped driver error (psycopg), if it has one."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def classify(exc: BaseException) -> Failure:
    """Transient (spool and retry) or permanent (dead-letter) for an exception from a write."""
    if isinstance(exc, DBAPIError):
        state = sqlstate(exc)
        if state is not None:
            return (
                Failure.PERMANENT if state[:2] in PERMANENT_SQLSTATE_CLASSES else Failure.TRANSIENT
            )
        # no SQLSTATE: SQLite, or psycopg before the server answered (connection errors)
        if isinstance(exc, IntegrityError | DataError):
            return Failure.PERMANENT
        return Failure.TRANSIENT
    if isinstance(exc, StatementError):
        return Failure.PERMANENT  # a value refused while binding it (e.g. a naive datetime)
    if isinstance(exc, SQLAlchemyError):
        return Failure.TRANSIENT  # pool timeout, closed connection, ...
    return Failure.PERMANENT  # raised while encoding this one record


def describe(exc: BaseException) -> str:
    """A log-safe one-line description: class, SQLSTATE, schema names; no values, no SQL."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        inner = exc.orig  # raised by our own bind processing: its message may quote the value
        return f"{type(exc).__name__} ({type(inner).__name__})" if inner else type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is None:
        return type(exc).__name__
    parts = [f"{type(exc).__name__} ({type(orig).__module__.split('.')[0]} {type(orig).__name__}"]
    state = sqlstate(exc)
    if state is not None:
        parts.append(f"SQLSTATE {state}")
        diag = getattr(orig, "diag", None)
        for label in ("table_name", "constraint_name", "column_name"):
            name = getattr(diag, label, None)
            if isinstance(name, str) and name:
                parts.append(f"{label.split('_')[0]} {name}")
    elif isinstance(exc, OperationalError | InterfaceError):
        # no SQLSTATE: the driver's own words about reaching the server (host, port,
        # "connection refused", "database is locked"); they never quote query data
        lines = str(orig).strip().splitlines()
        if lines:
            parts.append(lines[0][:_MAX_CONNECTION_MESSAGE])
    return ", ".join(parts) + ")"
