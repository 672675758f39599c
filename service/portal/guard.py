"""The portal's own protections: same-origin proof (CSRF) and a rate limit per client.

The portal's POST endpoints need no client JWT (a patient's browser holds no
signing key), so they prove something else:

* **same origin**: the ``Origin`` header, which browsers send on every POST,
  must be this service (``CDS_PUBLIC_URL`` or the Host the page was served
  from); a request without ``Origin`` must not say ``Sec-Fetch-Site`` other
  than ``same-origin``. No CORS is granted under ``/intake``, so a foreign page
  cannot even send the JSON body and custom header these endpoints require.
* **double-submit token**: ``GET /intake`` sets a random token in a cookie
  (``HttpOnly``, ``SameSite=Strict``, path ``/intake``) and writes the same
  token into the page; each POST must echo it in ``X-CSRF-Token``. Stateless,
  so it holds across gunicorn workers and pods with no shared secret.
* **rate limit**: a token bucket per client address, in memory, per server
  process, over a bounded number of clients (least recently seen forgotten).
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Request, Response

from service.http.errors import Problem

CSRF_COOKIE = "intake_csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/intake"
_MAX_TOKEN_CHARS = 128
#: Clients remembered by one process's rate limiter.
MAX_TRACKED_CLIENTS = 10_000


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def set_csrf_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, public_url: str) -> None:
    """403 unless the request comes from a page of this service."""
    origin = request.headers.get("Origin")
    if origin is None:
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            raise Problem(403, "Cross-site request refused", code="forbidden")
        return
    if origin.lower() == _origin(public_url):
        return
    if urlsplit(origin).netloc.lower() == request.host.lower():
        return
    raise Problem(403, "Cross-origin request refused", code="forbidden")


def check_csrf_token(request: Request) -> None:
    """403 unless the ``X-CSRF-Token`` header equals the portal's cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    valid = (
        0 < len(cookie) <= _MAX_TOKEN_CHARS
        and 0 < len(header) <= _MAX_TOKEN_CHARS
        and hmac.compare_digest(cookie.encode(), header.encode())
    )
    if not valid:
        raise Problem(
            403,
            "Missing or wrong portal token; reload the intake page",
            code="forbidden",
        )


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by client key: ``burst`` at once, refilled at ``per_minute``."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_seconds(self, key: str) -> int:
        """0 and one token spent when ``key`` may go on; else whole seconds to wait."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self._burst, now)
                while len(self._buckets) > self._max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0
            return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))


def client_key(request: Request, header: str | None) -> str:
    """The client's address: the trusted proxy's header when configured, else the peer."""
    if header:
        forwarded = request.headers.get(header, "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:64]
    return (request.remote_addr or "unknown")[:64]


def check_rate(limiter: RateLimiter, key: str) -> None:
    wait = limiter.wait_seconds(key)
    if wait:
        raise Problem(
            429,
            f"Too many requests from this address; try again in {wait} s",
            code="throttled",
            headers={"Retry-After": str(wait)},
        )
