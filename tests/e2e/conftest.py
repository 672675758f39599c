"""End-to-end fixtures: a real server process over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from testkit.server import ServerProcess, start_server

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture(scope="session")
def server_factory(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Start extra servers with their own environment; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(env: Mapping[str, str] | None = None, **kwargs: object) -> ServerProcess:
        tmp: Path = tmp_path_factory.mktemp("server")
        merged = {"DATABASE_URL": database_url, "CDS_AUTH": "off", **(env or {})}
        server = start_server(tmp, merged, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(server_factory: ServerFactory) -> ServerProcess:
    """The service with authentication off (auth has its own servers in test_auth)."""
    return server_factory()
