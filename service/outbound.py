"""Outbound HTTP GETs with one deadline for the whole call and a cap on the answer.

Used for the client's ``fhirServer`` and for issuers' JWKS (``jku``). requests
and urllib3 bound each socket operation, not the call: a server that sends a
byte a second holds the caller as long as it likes, and a huge answer is read
whole. Here a GET has one deadline for everything (connect, TLS handshake,
request, status line, headers, body: each socket operation gets only the time
left) and the body is read as a stream that stops past ``max_bytes``.

Redirects are not followed, no proxy is used, the answer is asked for
uncompressed (``Accept-Encoding: identity``: no decompression bomb). TLS is
verified against the system's CA store (``SSL_CERT_FILE``/``SSL_CERT_DIR``
extend it, as for any OpenSSL program).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

_READ_SIZE = 65_536
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


class OutboundError(Exception):
    """The call gave no usable answer; the message says why (for logs only)."""


class _DeadlineSocket:
    """The connection's socket as http.client sees it: each operation gets the time left."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def _arm(self) -> None:
        self._sock.settimeout(_left(self._deadline))

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        """http.client closes early (a socket's makefile keeps it open); BoundedGet closes it."""


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class BoundedGet:
    """GETs that take at most ``deadline`` seconds in all and read at most ``max_bytes``."""

    def __init__(self, *, deadline: float, max_bytes: int) -> None:
        self.deadline = deadline
        self.max_bytes = max_bytes
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def __call__(self, url: str, headers: Mapping[str, str]) -> bytes:
        """The body of a 200 answer; OutboundError for anything else."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise OutboundError("not an http(s) URL") from None
        host = parts.hostname
        if parts.scheme not in {"http", "https"} or not host:
            raise OutboundError("not an http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + self.deadline
        try:
            sock = self._connect(parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme], deadline)
            try:
                connection = (
                    http.client.HTTPSConnection(host, port, context=self._tls)
                    if parts.scheme == "https"
                    else http.client.HTTPConnection(host, port)
                )
                # http.client reads and writes only through this object from now on
                connection.sock = _DeadlineSocket(sock, deadline)
                connection.request("GET", target, headers={**headers, "Connection": "close"})
                return self._body(connection.getresponse())
            finally:
                sock.close()
        except TimeoutError:
            raise OutboundError(f"no complete answer within {self.deadline}s") from None
        except ssl.SSLError as exc:
            raise OutboundError(f"TLS failed ({type(exc).__name__})") from None
        except OSError as exc:
            raise OutboundError(f"unreachable ({type(exc).__name__})") from None
        except http.client.HTTPException as exc:
            raise OutboundError(f"broken answer ({type(exc).__name__})") from None
        except ValueError as exc:  # e.g. a host name that cannot be encoded
            raise OutboundError(f"not an http(s) URL ({type(exc).__name__})") from None

    def _connect(self, scheme: str, host: str, port: int, deadline: float) -> socket.socket:
        """A connected socket (TLS-wrapped for https), within the deadline."""
        sock = socket.create_connection((host, port), timeout=_left(deadline))
        if scheme != "https":
            return sock
        try:
            sock.settimeout(_left(deadline))  # the handshake as a whole gets what is left
            return self._tls_context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def _body(self, response: http.client.HTTPResponse) -> bytes:
        if response.status != 200:
            raise OutboundError(f"answered HTTP {response.status}")
        announced = response.getheader("Content-Length")
        if announced and announced.isdigit() and int(announced) > self.max_bytes:
            raise OutboundError(
                f"announced {announced} bytes, more than the {self.max_bytes} bytes allowed"
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read(min(_READ_SIZE, self.max_bytes + 1 - size)):
            size += len(chunk)
            if size > self.max_bytes:
                raise OutboundError(f"sent more than the {self.max_bytes} bytes allowed")
            chunks.append(chunk)
        return b"".join(chunks)
