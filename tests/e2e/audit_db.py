"""Read the audit trail the real server wrote (plain SQL over SQLAlchemy, read-only)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool


@contextmanager
def audit_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def invocations(engine: Engine, where: str, **params: Any) -> list[dict[str, Any]]:
    """Invocation rows matching a SQL condition, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT * FROM invocation WHERE {where} ORDER BY seq"), params
        ).mappings()
        return [dict(row) for row in rows]


def invocation_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM invocation")).scalar_one())


def wait_for_invocations(
    engine: Engine, where: str, count: int, timeout: float = 5.0, **params: Any
) -> list[dict[str, Any]]:
    """The audit write is synchronous, but give the server a moment after the response."""
    deadline = time.monotonic() + timeout
    rows = invocations(engine, where, **params)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = invocations(engine, where, **params)
    return rows
