"""Root fixtures. PostgreSQL comes from ``tests/pg.py``; it starts only when a test asks."""

from tests.pg import (  # noqa: F401  (fixtures)
    audit_trail,
    database_url,
    make_database,
    pg_server_url,
    pytest_terminal_summary,
)
