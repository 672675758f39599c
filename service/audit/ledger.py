"""``ReplayLedger``: the pod-local memory of accepted ``jti``s, shared by all its workers.

A SQLite file (``replay.sqlite3``, WAL mode) beside the spool. Every accepted
(iss, jti) is claimed here first, atomically across the pod's processes, so a token
is never accepted twice within one pod, whether PostgreSQL answers or not. A claim
is *pending* until PostgreSQL holds it too; the drainer pushes pending claims to
PostgreSQL when it answers again (``JtiReplayStore.sync_pending``).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

LEDGER_FILE = "replay.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted_jti (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at REAL NOT NULL,
    pending INTEGER NOT NULL,
    PRIMARY KEY (iss, jti)
)
"""
#: new, or taking over a row whose token has expired; returns a row iff claimed
_CLAIM = """
INSERT INTO accepted_jti (iss, jti, expires_at, pending) VALUES (?, ?, ?, ?)
ON CONFLICT (iss, jti) DO UPDATE SET expires_at = excluded.expires_at, pending = excluded.pending
WHERE accepted_jti.expires_at <= ?
RETURNING 1
"""


class LedgerError(OSError):
    """The ledger file cannot be opened, read or written."""


class ReplayLedger:
    """Thread-safe; one per process, all on the same file."""

    def __init__(self, directory: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = directory / LEDGER_FILE
        self._lock = threading.Lock()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # durable across a process crash; a lost pod loses its ledger anyway
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"replay ledger {self.path}: {exc}") from exc

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"replay ledger {self.path}: {exc}") from exc

    def claim(
        self, iss: str, jti: str, expires_at: datetime, now: datetime, *, pending: bool
    ) -> bool:
        """True if (iss, jti) was not held by a live claim: it is now.

        ``pending``: PostgreSQL must still be told (the drainer will). A claim whose
        caller is about to ask PostgreSQL itself is not pending, so the drainer never
        races that caller; the caller marks it pending if PostgreSQL fails it.
        """
        until, at = expires_at.timestamp(), now.timestamp()
        return bool(self._run(_CLAIM, (iss, jti, until, int(pending), at)))

    def mark_pending(self, iss: str, jti: str) -> None:
        self._run("UPDATE accepted_jti SET pending = 1 WHERE iss = ? AND jti = ?", (iss, jti))

    def settle(self, keys: list[tuple[str, str]]) -> None:
        """PostgreSQL holds these: no longer pending."""
        for iss, jti in keys:
            self._run("UPDATE accepted_jti SET pending = 0 WHERE iss = ? AND jti = ?", (iss, jti))

    def forget(self, iss: str, jti: str) -> None:
        """Undo a claim (the call was refused after all)."""
        self._run("DELETE FROM accepted_jti WHERE iss = ? AND jti = ?", (iss, jti))

    def pending(self, limit: int = 500) -> list[tuple[str, str, float]]:
        rows = self._run(
            "SELECT iss, jti, expires_at FROM accepted_jti WHERE pending = 1 LIMIT ?", (limit,)
        )
        return [(str(iss), str(jti), float(until)) for iss, jti, until in rows]

    def pending_count(self) -> int:
        [(count,)] = self._run("SELECT count(*) FROM accepted_jti WHERE pending = 1")
        return int(count)

    def prune(self, now: datetime) -> int:
        """Forget claims whose tokens have expired and that PostgreSQL already holds."""
        rows = self._run(
            "DELETE FROM accepted_jti WHERE pending = 0 AND expires_at <= ? RETURNING 1",
            (now.timestamp(),),
        )
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
