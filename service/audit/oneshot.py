"""``OneStatementWriter``: a hook call's audit record in one statement, one commit (PostgreSQL).

The hot path of writes. Two statements, each one round trip in autocommit, prepared by
psycopg on first use:

* ``invocation(record)``: the invocation row and its card rows (a data-modifying CTE);
* ``claimed_invocation(record, claim)``: the same, preceded by the claim of the token's
  ``jti`` in ``used_jti`` (new, or taking over a row whose token has expired: the rule of
  ``replay.remember_jti_statement``); the invocation and its cards are inserted only
  when the jti was new. Returns whether it was.

One statement is atomic: either the jti, the invocation and its cards are all committed
or none is. An error the server reports (a SQLSTATE: lock or statement timeout, a value
it refuses) means nothing was committed; a connection lost mid-statement may have
committed or not (the caller's fallback is right either way, see ``spooling.py``).

Errors are raised as SQLAlchemy's ``DBAPIError`` family, so ``errors.classify`` and
``errors.describe`` read them as they read any other audit write; a value that cannot
be sent at all raises ``StatementError`` (classified permanent), as SQLAlchemy does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, StatementError

from service.audit.codec import INVOCATION_COLUMNS, invocation_columns
from service.audit.db import json_text
from service.audit.records import InvocationRecord, JtiClaim
from service.audit.sql import storable

#: invocation columns and the PostgreSQL type each parameter is cast to
_COLUMN_TYPES = {
    "id": "uuid",
    "occurred_at": "timestamptz",
    "http_status": "smallint",
    "latency_ms": "float8",
    "fired_rules": "jsonb",
}
_CARD_ARRAYS = (
    ("positions", "smallint"),
    ("card_uuids", "text"),
    ("rule_ids", "text"),
    ("indicators", "text"),
    ("topics", "text"),
)


def _invocation_insert(source: str) -> str:
    """INSERT the invocation (one row ``FROM source``) and its cards; CTEs ``call``, ``cards``."""
    names = INVOCATION_COLUMNS
    columns = ", ".join(names)
    values = ", ".join(f"%({name})s::{_COLUMN_TYPES.get(name, 'text')}" for name in names)
    arrays = ", ".join(f"%({name})s::{kind}[]" for name, kind in _CARD_ARRAYS)
    # only this module's constants are formatted in: every value is a parameter
    return f"""
call AS (
    INSERT INTO invocation ({columns})
    SELECT {values} {source}
    ON CONFLICT (id, occurred_at) DO NOTHING
    RETURNING id, occurred_at
), cards AS (
    INSERT INTO issued_card
        (invocation_id, invocation_occurred_at, position, card_uuid, rule_id, indicator, topic)
    SELECT call.id, call.occurred_at, c.position, c.card_uuid, c.rule_id, c.indicator, c.topic
    FROM call, unnest({arrays}) AS c(position, card_uuid, rule_id, indicator, topic)
    ON CONFLICT DO NOTHING
)"""  # noqa: S608


def invocation_sql() -> str:
    return "WITH " + _invocation_insert("") + "\nSELECT count(*) FROM call"


def claimed_invocation_sql() -> str:
    # as above: constants only
    return f"""WITH claimed AS (
    INSERT INTO used_jti (iss, jti, expires_at)
    VALUES (%(iss)s::text, %(jti)s::text, %(expires_at)s::timestamptz)
    ON CONFLICT (iss, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
    WHERE used_jti.expires_at <= %(now)s::timestamptz
    RETURNING 1
), {_invocation_insert("FROM claimed")}
SELECT count(*) FROM claimed"""  # noqa: S608


def invocation_params(record: InvocationRecord) -> dict[str, Any]:
    """The statement's parameters: the row as ``sql.invocation_row`` stores it, the cards
    as parallel arrays (one statement shape whatever their number)."""
    if record.occurred_at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    params: dict[str, Any] = storable(invocation_columns(record))
    params["fired_rules"] = json_text(params["fired_rules"])
    cards = record.cards
    params["positions"] = list(range(len(cards)))
    params["card_uuids"] = storable([card.uuid for card in cards])
    params["rule_ids"] = storable([card.rule_id for card in cards])
    params["indicators"] = storable([card.indicator for card in cards])
    params["topics"] = storable([card.topic for card in cards])
    return params


def _unsendable(exc: Exception) -> StatementError:
    """A value refused before anything was sent: as SQLAlchemy says it of its own binds."""
    return StatementError("audit record not sendable", None, None, exc)


def _checked(
    build: Callable[[InvocationRecord], dict[str, Any]], record: InvocationRecord
) -> dict[str, Any]:
    try:
        return build(record)
    except ValueError as exc:
        raise _unsendable(exc) from exc


class OneStatementWriter:
    """Thread-safe: each call checks a connection out of the engine's pool."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("one-statement audit writes need PostgreSQL")
        self.engine = engine
        self._invocation = invocation_sql()
        self._claimed = claimed_invocation_sql()

    def invocation(self, record: InvocationRecord) -> None:
        """Insert the invocation and its cards (a repeat of the same record does nothing)."""
        self._run(self._invocation, _checked(invocation_params, record))

    def claimed_invocation(self, record: InvocationRecord, claim: JtiClaim) -> bool:
        """Claim the jti and, only if it was new, insert the invocation and its cards."""
        params = _checked(invocation_params, record)
        if claim.expires_at.tzinfo is None or claim.at.tzinfo is None:
            raise _unsendable(ValueError("jti times must be timezone-aware"))
        params.update(iss=claim.iss, jti=claim.jti, expires_at=claim.expires_at, now=claim.at)
        return self._run(self._claimed, params) == 1

    def _run(self, sql: str, params: dict[str, Any]) -> int:
        with self._autocommit() as conn:
            try:
                row = conn.execute(sql, params, prepare=True).fetchone()
            except psycopg.Error as exc:
                if (
                    exc.sqlstate is None
                    and not conn.broken
                    and not isinstance(exc, psycopg.OperationalError)
                ):  # refused before it was sent (a value psycopg cannot adapt)
                    raise _unsendable(exc) from exc
                raise DBAPIError.instance(
                    None, None, exc, psycopg.Error, connection_invalidated=conn.broken
                ) from exc
        return int(row[0]) if row is not None else 0

    @contextmanager
    def _autocommit(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled psycopg connection in autocommit: the statement is its own transaction."""
        try:
            fairy = self.engine.raw_connection()
        except psycopg.Error as exc:  # cannot connect (the pool does not wrap it here)
            raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc
        try:
            conn: psycopg.Connection[Any] = fairy.driver_connection  # type: ignore[assignment]
            conn.autocommit = True
            try:
                yield conn
            finally:
                if conn.broken or conn.closed:
                    fairy.invalidate()
                else:
                    conn.autocommit = False
        finally:
            fairy.close()
