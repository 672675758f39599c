"""The dead-letter store: audit records the database refused for good, kept for a human.

``dead-letters.jsonl`` beside the spool, mode 0600 (records hold patient references),
one framed JSON object per line (``framing.py``): ``{"at", "kind", "id", "reason",
"record" | "raw"}``. ``kind`` is the record's (invocation, feedback, refusals) or
``torn`` / ``unreadable`` for spool bytes that were not a whole record. ``reason`` is
log-safe (``errors.describe``); the record itself never goes to a log, only its id.

A dead letter never blocks the spool and never marks the database down; the app
counts them (``AuditHooks.on_dead_letter``) and ``backpain-cds audit dead-letters``
lists them. ``rejected.jsonl``, the previous release's file, is listed too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.audit import codec
from service.audit.files import write_all
from service.audit.framing import frame, read_frames

log = logging.getLogger(__name__)

DEAD_LETTER_FILE = "dead-letters.jsonl"
LEGACY_FILE = "rejected.jsonl"
FILE_MODE = 0o600


@dataclass(frozen=True)
class DeadLetter:
    at: datetime | None
    kind: str
    id: str | None
    reason: str
    record: dict[str, Any] | None = None
    raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "kind": self.kind,
            "id": self.id,
            "reason": self.reason,
            "record": self.record,
            "raw": self.raw,
        }


def _ignore(_kind: str) -> None:
    return None


class DeadLetters:
    """Appends dead letters (fsync'd, 0600) to ``directory``; thread- and process-safe."""

    def __init__(self, directory: Path, on_dead_letter: Callable[[str], None] = _ignore) -> None:
        self.path = directory / DEAD_LETTER_FILE
        self._on_dead_letter = on_dead_letter
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        record_id: str | None,
        reason: str,
        *,
        record: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Keep it; raises ``OSError`` only if the file cannot be written."""
        letter = {
            "at": datetime.now(UTC).isoformat(),
            "kind": kind,
            "id": record_id,
            "reason": reason,
            "record": record,
            "raw": raw.decode("utf-8", "replace") if raw is not None else None,
        }
        data = frame(codec.dumps(letter, ascii_only=True).encode("ascii"))
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            try:
                os.fchmod(fd, FILE_MODE)  # also when an older file was made more open
                write_all(fd, data)  # O_APPEND: each write lands at the end
                os.fsync(fd)
            finally:
                os.close(fd)
        log.error(
            "audit %s %s dead-lettered in %s: %s", kind, record_id or "(no id)", self.path, reason
        )
        self._on_dead_letter(kind)


def read_dead_letters(directory: Path) -> list[DeadLetter]:
    """Every dead letter in ``directory``, oldest first (the previous release's file first)."""
    letters: list[DeadLetter] = []
    legacy = directory / LEGACY_FILE
    if legacy.is_file():
        for line in legacy.read_bytes().splitlines():
            try:
                data = json.loads(line)
                reason = str(data.get("reason", ""))
            except (ValueError, AttributeError):
                reason = "unreadable line"
            letters.append(DeadLetter(at=None, kind="rejected", id=None, reason=reason))
    current = directory / DEAD_LETTER_FILE
    if current.is_file():
        frames = read_frames(current.read_bytes())
        for payload in frames.payloads:
            data = json.loads(payload)
            letters.append(
                DeadLetter(
                    at=datetime.fromisoformat(data["at"]),
                    kind=data["kind"],
                    id=data.get("id"),
                    reason=data["reason"],
                    record=data.get("record"),
                    raw=data.get("raw"),
                )
            )
        letters.extend(
            DeadLetter(at=None, kind="torn", id=None, reason=f"{len(t)} unreadable bytes")
            for t in frames.torn
        )
    return letters
