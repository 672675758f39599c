"""The one place that opens the audit database: engines and read-only connections.

``postgresql+psycopg://`` (psycopg 3, pooled) in production and tests; ``sqlite:///``
for ``make run``. Nothing else in the package calls ``create_engine``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from service.audit.codec import json_default

SUPPORTED_BACKENDS = ("postgresql", "sqlite")

#: How JSON columns are written (the engine's serializer, and the one-statement writes).
json_text = functools.partial(
    json.dumps, default=json_default, separators=(",", ":"), ensure_ascii=False
)


class UnsupportedDatabase(ValueError):
    """DATABASE_URL names a backend the audit trail does not support."""


def make_engine(
    url: str,
    *,
    connect_timeout: int = 3,
    pool_size: int = 5,
    statement_timeout_ms: int | None = None,
    lock_timeout_ms: int | None = None,
) -> Engine:
    """An engine for ``url``; ``connect_timeout`` (seconds) bounds how long a dead server costs.

    ``statement_timeout_ms`` and ``lock_timeout_ms`` bound every statement on the engine's
    connections (the service's audit and replay writes; not migrations or maintenance).
    PostgreSQL URLs must use the psycopg 3 driver (``postgresql+psycopg://``); a bare
    ``postgresql://`` is taken to mean it.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise UnsupportedDatabase(
                f"DATABASE_URL: use the psycopg 3 driver (postgresql+psycopg://), "
                f"got {parsed.drivername!r}"
            )
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=connect_timeout,
            pool_recycle=1800,
            json_serializer=json_text,
            connect_args={
                "connect_timeout": connect_timeout,
                # a request never waits on a silently dead network longer than this
                "tcp_user_timeout": connect_timeout * 1000,
                "application_name": "backpain-cds",
                **_timeouts(statement_timeout_ms, lock_timeout_ms),
            },
        )
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        busy = lock_timeout_ms / 1000 if lock_timeout_ms else float(connect_timeout) * 5
        engine = create_engine(parsed, json_serializer=json_text, connect_args={"timeout": busy})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    raise UnsupportedDatabase(
        f"DATABASE_URL: the audit trail supports {', '.join(SUPPORTED_BACKENDS)}, got {backend!r}"
    )


def _timeouts(statement_ms: int | None, lock_ms: int | None) -> dict[str, str]:
    """libpq ``options`` setting the session's statement and lock timeouts."""
    settings = [
        f"-c {name}={int(value)}"
        for name, value in (("statement_timeout", statement_ms), ("lock_timeout", lock_ms))
        if value
    ]
    return {"options": " ".join(settings)} if settings else {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction cannot write (auditors' queries)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn = conn.execution_options(postgresql_readonly=True)
            with conn.begin():
                yield conn
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA query_only=ON")
        conn.commit()
        try:
            with conn.begin():
                yield conn
        finally:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA query_only=OFF")
            conn.commit()
