"""Alembic environment for the audit schema.

Run programmatically by ``service.audit.migrate`` (which hands over an open connection
in ``config.attributes["connection"]``), or by the ``alembic`` CLI from the repository
root (``[tool.alembic]`` in pyproject.toml), which reads DATABASE_URL like the service.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.audit.db import make_engine
from service.audit.models import metadata
from service.audit.partitions import include_in_autogenerate
from service.config import Settings

config = context.config
target_metadata = metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_in_autogenerate,  # monthly partitions are not model tables
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    settings = Settings.from_env()
    engine = make_engine(settings.database_url, connect_timeout=settings.db_connect_timeout)
    try:
        with engine.connect() as conn:
            run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_online()
