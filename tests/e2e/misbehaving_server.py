"""A real loopback HTTP server that answers badly on purpose: slowly, or with too much.

Every request gets the same answer: ``head`` (status line and headers) and ``body``.
The first ``drip`` bytes of the part named by ``drip_in`` go out one at a time,
``interval`` seconds apart; the rest follows at once. ``chunks`` of the body
are sent with chunked transfer encoding instead of a Content-Length. It records
what happened to each answer, so a test can tell a client that gave up early
from one that read it all.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class BadAnswer:
    body: bytes
    status: str = "200 OK"
    content_type: str = "application/fhir+json"
    #: bytes sent one at a time, ``interval`` apart, before the rest
    drip: int = 0
    drip_in: str = "body"  # "head" | "body"
    interval: float = 1.0
    #: send the body chunked (no Content-Length)
    chunked: bool = False
    #: per answer: "complete" or "client gone"
    outcomes: list[str] = field(default_factory=list)

    def outcome(self, timeout: float = 10.0) -> str:
        """How the first answer ended, once it has ("still sending" after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.outcomes[0] if self.outcomes else "still sending"

    def head(self) -> bytes:
        framing = (
            "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {len(self.body)}"
        )
        return (
            f"HTTP/1.1 {self.status}\r\nContent-Type: {self.content_type}\r\n"
            f"{framing}\r\nConnection: close\r\n\r\n"
        ).encode()

    def framed_body(self) -> bytes:
        if not self.chunked:
            return self.body
        size = 1 << 16
        pieces = [self.body[i : i + size] for i in range(0, len(self.body), size)]
        return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def _read_request(connection: socket.socket) -> None:
    """Read up to the end of the request head (bounded), so the client is not reset early."""
    seen = b""
    connection.settimeout(5)
    while b"\r\n\r\n" not in seen and len(seen) < 65536:
        data = connection.recv(4096)
        if not data:
            return
        seen += data


@contextmanager
def misbehaving_server(answer: BadAnswer) -> Iterator[str]:
    """Serve ``answer`` on a free loopback port; yields the base URL (``.../fhir``)."""
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection: socket.socket = self.request
            try:
                _read_request(connection)
                head = answer.head()
                data = head + answer.framed_body()
                start = 0 if answer.drip_in == "head" else len(head)
                connection.sendall(data[:start])
                for index in range(start, start + answer.drip):
                    connection.sendall(data[index : index + 1])
                    if stop.wait(answer.interval):
                        return
                connection.sendall(data[start + answer.drip :])
                connection.shutdown(socket.SHUT_WR)
                # the client reads to the end and closes; wait for that (bounded)
                connection.settimeout(10)
                while connection.recv(65536):
                    pass
                answer.outcomes.append("complete")
            except OSError:
                answer.outcomes.append("client gone")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
