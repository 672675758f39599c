"""``RefusalCounter``: calls refused before authentication, counted in memory per window.

Each refusal costs a dictionary increment, not a database row: one ``RefusalCount``
per (client, status, window) leaves when its window has closed. Memory is bounded:
at most ``max_clients`` distinct clients per window are counted apart; the rest are
counted together under ``OTHER_CLIENTS``.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.audit.codec import bounded_key
from service.audit.records import RefusalCount

OTHER_CLIENTS = "(other clients)"
DEFAULT_MAX_CLIENTS = 1000


@dataclass
class _Tally:
    count: int
    first_at: datetime
    last_at: datetime


class RefusalCounter:
    """Thread-safe; one per process."""

    def __init__(self, window_seconds: int = 60, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        if window_seconds < 1:
            raise ValueError(f"window_seconds must be at least 1, got {window_seconds}")
        self.window_seconds = window_seconds
        self._max_clients = max_clients
        self._tallies: dict[tuple[datetime, str, int], _Tally] = {}
        self._clients: dict[datetime, set[str]] = {}
        self._lock = threading.Lock()

    def window_of(self, at: datetime) -> datetime:
        epoch = int(at.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.window_seconds, UTC)

    def count(self, client_key: str, status: int, at: datetime) -> None:
        window = self.window_of(at)
        client = bounded_key(client_key)
        with self._lock:
            clients = self._clients.setdefault(window, set())
            if client not in clients:
                if len(clients) >= self._max_clients:
                    client = OTHER_CLIENTS
                clients.add(client)
            tally = self._tallies.get((window, client, status))
            if tally is None:
                self._tallies[(window, client, status)] = _Tally(1, at, at)
            else:
                tally.count += 1
                tally.first_at = min(tally.first_at, at)
                tally.last_at = max(tally.last_at, at)

    def closed(self, now: datetime | None = None) -> list[RefusalCount]:
        """Take the counts of every window that has ended by ``now`` (all when None)."""
        span = timedelta(seconds=self.window_seconds)
        with self._lock:
            done = [key for key in self._tallies if now is None or key[0] + span <= now]
            taken = [(key, self._tallies.pop(key)) for key in done]
            for window in {key[0] for key in done}:
                if not any(key[0] == window for key in self._tallies):
                    self._clients.pop(window, None)
        return [
            RefusalCount(
                id=uuid.uuid4(),
                client_key=client,
                http_status=status,
                window_start=window,
                window_seconds=self.window_seconds,
                count=tally.count,
                first_at=tally.first_at,
                last_at=tally.last_at,
            )
            for (window, client, status), tally in sorted(taken, key=lambda kv: kv[0])
        ]
