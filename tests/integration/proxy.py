"""A TCP relay in front of the real PostgreSQL that a test can cut and restore.

``cut()`` closes the listening socket (new connections are refused) and every relayed
connection (the database vanishes mid-conversation); ``restore()`` listens again on the
same port. The server behind it is never touched.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from sqlalchemy.engine import URL, make_url

from testkit.pg import free_port


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._listening = threading.Event()

    @classmethod
    def in_front_of(cls, database_url: str | URL) -> TcpProxy:
        """A relay to the server ``database_url`` names (not yet listening)."""
        real = make_url(database_url)
        return cls(real.host or "127.0.0.1", real.port or 5432)

    def url(self, database_url: str | URL) -> str:
        """``database_url`` reached through this relay."""
        return (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def __enter__(self) -> TcpProxy:
        self.restore()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._listening.set()
        self._spawn(self._accept_loop, listener)

    def cut(self) -> None:
        self._listening.clear()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)
        with self._lock:
            for pair in self._pairs:
                for sock in pair:
                    sock.close()
            self._pairs.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listening.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            self._spawn(self._relay, client, server)

    def observer(self) -> Callable[[bytes], None] | None:
        """Called once per relayed connection; what it returns sees the server's bytes."""
        return None

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        observe = self.observer()
        while self._listening.is_set():
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return self._close(client, server)
                    if observe is not None and sock is server:
                        observe(data)
                    peers[sock].sendall(data)
            except (OSError, ValueError):
                return self._close(client, server)
        return None

    def _close(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            if (client, server) in self._pairs:
                self._pairs.remove((client, server))
        client.close()
        server.close()
