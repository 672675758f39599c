"""A relay in front of the real PostgreSQL that counts round trips and commits on the wire.

It reads the server's side of the PostgreSQL protocol (v3): every message is a type
byte and a length. One *round trip* is one ``ReadyForQuery`` ('Z') after the
connection's start-up: the client waits for it after each query or ``Sync``. One
*commit* is a round trip that ends a transaction that did something: 'Z' with status
idle ('I') after at least one ``CommandComplete`` ('C'), no ``ErrorResponse`` ('E')
and a last command other than ROLLBACK; that is an autocommit statement or a COMMIT,
as PostgreSQL's own ``xact_commit`` counts them. Independent of the client library.

Connect through it with ``sslmode=disable&gssencmode=disable`` (``url``), so the
server's first bytes are protocol messages, not the one-byte answer to an SSL request.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import URL, make_url

from tests.integration.proxy import TcpProxy


@dataclass(frozen=True)
class WireCounts:
    round_trips: int = 0
    commits: int = 0

    def __sub__(self, other: WireCounts) -> WireCounts:
        return WireCounts(self.round_trips - other.round_trips, self.commits - other.commits)


@dataclass
class _Conversation:
    """The server's messages on one connection, parsed as they come."""

    buffer: bytes = b""
    started: bool = False
    commands: list[bytes] = field(default_factory=list)
    failed: bool = False

    def feed(self, data: bytes, counter: WireCounter) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            kind = self.buffer[:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            self._message(kind, body, counter)

    def _message(self, kind: bytes, body: bytes, counter: WireCounter) -> None:
        if kind == b"C":
            self.commands.append(body.rstrip(b"\0"))
        elif kind == b"E":
            self.failed = True
        elif kind == b"Z":
            if self.started:
                committed = (
                    body[:1] == b"I"
                    and bool(self.commands)
                    and not self.failed
                    and self.commands[-1] != b"ROLLBACK"
                )
                counter.count(committed)
            self.started = True
            self.commands, self.failed = [], False


class WireCounter(TcpProxy):
    """``with WireCounter(host, port) as wire:`` ... ``wire.url(real_url)``, ``wire.counts()``.

    The relay is ``TcpProxy``'s; this class reads what the server sends through it.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__(upstream_host, upstream_port)
        self._counts = WireCounts()

    def __enter__(self) -> WireCounter:
        self.restore()
        return self

    def url(self, database_url: str | URL) -> str:
        """``database_url`` through this relay, without SSL or GSS negotiation."""
        plain = make_url(super().url(database_url))
        no_tls = plain.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
        return no_tls.render_as_string(hide_password=False)

    def counts(self) -> WireCounts:
        with self._lock:
            return self._counts

    def count(self, committed: bool) -> None:
        with self._lock:
            self._counts = WireCounts(
                self._counts.round_trips + 1, self._counts.commits + int(committed)
            )

    def observer(self) -> Callable[[bytes], None]:
        conversation = _Conversation()
        return lambda data: conversation.feed(data, self)
