"""Which ``fhirServer`` this service may call on a client's behalf.

A hook request names the FHIR server to read from; calling whatever it names
would make this service a request forger for anyone trusted (or, with auth off,
anyone). So a fhirServer is called only when it falls under a base URL allowed
for the caller:

* auth on: the ``fhirServers`` listed for the token's issuer in
  ``CDS_TRUSTED_ISSUERS`` (nothing listed: no fhirServer at all);
* auth off: ``FHIR_SERVERS_ALLOWED``, by default loopback only
  (``http://127.0.0.1``, ``http://localhost``, ``http://[::1]``, any port).

A URL falls under a base when scheme, host and port are equal and its path is
the base's path or below it on a ``/`` boundary. URLs with a user or password,
a query or fragment, ``.``/``..`` segments (also percent-encoded), backslashes
or control characters never do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
NOT_A_URL = "must be an absolute http(s) URL"
HAS_USER = "must not carry a user or password"
HAS_QUERY = "must not carry a query or fragment"
HAS_DOTS = "must not contain '.' or '..' segments"


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    path: str


def _split(text: object) -> _Url:
    """The parts of an absolute http(s) URL; ValueError names what is wrong with it."""
    if (
        not isinstance(text, str)
        or "\\" in text
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in text)
    ):
        raise ValueError(NOT_A_URL)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(NOT_A_URL)
    if parts.username is not None or parts.password is not None:
        raise ValueError(HAS_USER)
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(HAS_QUERY)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(NOT_A_URL) from None
    decoded = unquote(parts.path)
    if "\\" in decoded or any(segment in {".", ".."} for segment in decoded.split("/")):
        raise ValueError(HAS_DOTS)
    return _Url(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], parts.path.rstrip("/"))


@dataclass(frozen=True)
class FhirServerBase:
    """A base URL calls may go to (``port`` None: any port)."""

    scheme: str
    host: str
    port: int | None
    #: without a trailing slash; "" for the server's root
    path: str

    @classmethod
    def parse(cls, text: object) -> FhirServerBase:
        """A base from its URL; ValueError names what is wrong with it."""
        url = _split(text)
        return cls(url.scheme, url.host, url.port, url.path)

    def covers(self, url: _Url) -> bool:
        return (
            url.scheme == self.scheme
            and url.host == self.host
            and (self.port is None or url.port == self.port)
            and (url.path == self.path or url.path.startswith(self.path + "/"))
        )


#: Auth off and FHIR_SERVERS_ALLOWED unset: this machine only, plain http, any port.
LOOPBACK = tuple(
    FhirServerBase("http", host, None, "") for host in ("127.0.0.1", "localhost", "::1")
)


class ListsFhirServers(Protocol):
    """What the policy reads of a trusted issuer (``issuers.TrustedIssuer``)."""

    @property
    def fhir_servers(self) -> tuple[FhirServerBase, ...]: ...


@dataclass(frozen=True)
class FhirServerPolicy:
    """The base URLs allowed per caller (``None``: an unauthenticated caller, auth off)."""

    allowed: Mapping[str | None, tuple[FhirServerBase, ...]]

    @classmethod
    def for_issuers(cls, issuers: Mapping[str, ListsFhirServers]) -> FhirServerPolicy:
        """Auth on: each issuer's ``fhirServers``; nothing for an unauthenticated caller."""
        return cls({iss: issuer.fhir_servers for iss, issuer in issuers.items()})

    @classmethod
    def without_auth(cls, bases: Iterable[str]) -> FhirServerPolicy:
        """Auth off: these bases (``FHIR_SERVERS_ALLOWED``), or loopback when there are none.

        Raises ValueError naming the first bad base.
        """
        parsed: list[FhirServerBase] = []
        for text in bases:
            try:
                parsed.append(FhirServerBase.parse(text))
            except ValueError as exc:
                raise ValueError(f"{text!r} {exc}") from None
        return cls({None: tuple(parsed) or LOOPBACK})

    def allows(self, iss: str | None, url: str) -> bool:
        """May this service call ``url`` for a caller whose token came from ``iss``?"""
        bases = self.allowed.get(iss, ())
        if not bases:
            return False
        try:
            target = _split(url)
        except ValueError:
            return False
        return any(base.covers(target) for base in bases)
