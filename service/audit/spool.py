"""A local, append-only, fsync'd spool for audit records the database could not take.

One framed record per line (``framing.py``: length, CRC-32, then the JSON object
``{"kind": "invocation"|"feedback", "id": <record uuid>, "record": {...}}``), so a
write torn by a crash loses only that record. Every writer (one ``Spool`` per
process) appends to its own file ``spool-<token>.jsonl``, holding an exclusive
``flock`` on it for its lifetime. A file whose lock is free belongs to a process that
is gone: the next ``Spool`` on the same directory adopts it and replays it first
(oldest file first), so a restart loses nothing.

Replay is at-least-once here and exactly-once in the database: the sink inserts keyed
by the record id (``ON CONFLICT DO NOTHING``), so a crash between the database commit
and the spool truncation only repeats inserts that are then ignored.

Records that cannot be stored at all (torn by a crash mid-write, or refused by the
database for their content) go to the dead-letter store (``deadletter.py``) beside
the spool, never dropped.
Files of the previous release (plain JSON lines, no frames) are still read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.audit import codec
from service.audit.deadletter import DeadLetters
from service.audit.files import DirectoryUsage, mtime_or_zero, open_locked_new, write_all
from service.audit.framing import frame, read_frames
from service.audit.records import AuditRecord, InvocationRecord

log = logging.getLogger(__name__)

SPOOL_GLOB = "spool-*.jsonl"


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled record, in arrival order."""

    record: AuditRecord

    @property
    def kind(self) -> str:
        return codec.record_kind(self.record)

    @property
    def card_uuids(self) -> tuple[str, ...]:
        if isinstance(self.record, InvocationRecord):
            return tuple(card.uuid for card in self.record.cards)
        return ()

    def payload(self) -> bytes:
        body = codec.record_to_dict(self.record)
        line = codec.dumps(
            {"kind": self.kind, "id": str(self.record.id), "record": body}, ascii_only=True
        )
        return line.encode("ascii")

    def to_line(self) -> bytes:
        """The record as one framed line of the spool file."""
        return frame(self.payload())

    @classmethod
    def from_payload(cls, payload: bytes) -> SpoolEntry:
        data: dict[str, Any] = json.loads(payload)
        return cls(codec.record_from_dict(data.get("kind"), data["record"]))


#: Stores a batch in the database, in order. Raises when the database is unavailable
#: (the batch stays spooled); handles record-specific refusals itself (see ``reject``).
Sink = Callable[[Sequence[SpoolEntry]], None]


class SpoolError(OSError):
    """The spool directory cannot be written: the audit record would be lost."""


class SpoolFull(SpoolError):
    """The spool directory holds ``AUDIT_SPOOL_MAX_BYTES`` already."""


@dataclass
class _Orphan:
    """A spool file left by a process that is gone, adopted (and locked) by this one."""

    path: Path
    fd: int
    entries: list[SpoolEntry]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


class Spool:
    """This process's spool file plus any adopted orphans. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        dead_letters: DeadLetters | None = None,
        *,
        max_bytes: int | None = None,
    ) -> None:
        self.directory = directory
        self.dead_letters = dead_letters or DeadLetters(directory)
        self._usage = DirectoryUsage(directory, SPOOL_GLOB, max_bytes) if max_bytes else None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._name = f"spool-{uuid.uuid4().hex}.jsonl"
            self._fd = open_locked_new(directory, self._name)
        except OSError as exc:
            raise SpoolError(f"audit spool directory {directory} is not writable: {exc}") from exc
        self._lock = threading.Lock()
        self._entries: list[SpoolEntry] = []
        self._size = 0
        self._orphans: list[_Orphan] = []
        self._closed = False
        self.adopt_orphans()

    @property
    def path(self) -> Path:
        return self.directory / self._name

    # -- writing ---------------------------------------------------------------------

    def append(self, entry: SpoolEntry) -> None:
        """Append and fsync; when this returns the record survives a crash."""
        line = entry.to_line()
        with self._lock:
            self._append_locked(line, entry)

    def append_if_pending(self, entry: SpoolEntry) -> bool:
        """Append only if the spool already holds records (keeps arrival order). The line
        is built only then: with the database up, the spool is empty on every call."""
        with self._lock:
            if not self._depth_locked():
                return False
            self._append_locked(entry.to_line(), entry)
            return True

    def _append_locked(self, line: bytes, entry: SpoolEntry) -> None:
        """Raises ``SpoolFull`` at the cap, ``SpoolError`` when the disk fails."""
        if self._closed:
            raise SpoolError(f"audit spool {self.path} is closed")
        if self._usage is not None and not self._usage.reserve(len(line)):
            raise SpoolFull(
                f"audit spool {self.directory} holds {self._usage.used} bytes, "
                f"its cap is {self._usage.max_bytes} (AUDIT_SPOOL_MAX_BYTES)"
            )
        try:
            write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):  # leave no fragment for the next append
                os.ftruncate(self._fd, self._size)
            raise SpoolError(f"cannot append to audit spool {self.path}: {exc}") from exc
        self._entries.append(entry)
        self._size += len(line)

    def reject(self, entry: SpoolEntry | bytes, reason: str, kind: str = "torn") -> None:
        """Keep a record the database refused for good (or spool bytes that are no record)."""
        if isinstance(entry, SpoolEntry):
            self.dead_letters.add(
                entry.kind, str(entry.record.id), reason, record=json.loads(entry.payload())
            )
        else:
            self.dead_letters.add(kind, None, reason, raw=entry)

    # -- reading ---------------------------------------------------------------------

    def depth(self) -> int:
        with self._lock:
            return self._depth_locked()

    def _depth_locked(self) -> int:
        return len(self._entries) + sum(len(o.entries) for o in self._orphans)

    def card_uuids(self, wanted: Iterable[str], issuer: str | None = None) -> set[str]:
        """Which of ``wanted`` were issued by invocations still waiting in the spool (with
        ``issuer``, issued to that client)."""
        wanted_set = set(wanted)
        found: set[str] = set()
        with self._lock:
            for entries in [self._entries, *(o.entries for o in self._orphans)]:
                for entry in entries:
                    if issuer is None or getattr(entry.record, "client_iss", None) == issuer:
                        found.update(wanted_set.intersection(entry.card_uuids))
        return found

    # -- orphans ---------------------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Lock and load spool files whose writer is gone; returns how many were adopted."""
        adopted = 0
        candidates = sorted(
            (p for p in self.directory.glob(SPOOL_GLOB) if p.name != self._name),
            key=mtime_or_zero,
        )
        with self._lock:
            held = {o.path for o in self._orphans}
            for path in candidates:
                if path in held:
                    continue
                orphan = self._try_adopt(path)
                if orphan is not None:
                    self._orphans.append(orphan)
                    adopted += 1
        return adopted

    def _try_adopt(self, path: Path) -> _Orphan | None:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None  # its writer is alive
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError(path)  # replaced or removed meanwhile
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            os.close(fd)
            return None
        entries = self._parse(raw, path)
        log.warning("audit spool: adopted %s with %d record(s) to replay", path, len(entries))
        return _Orphan(path=path, fd=fd, entries=entries)

    def _parse(self, raw: bytes, path: Path) -> list[SpoolEntry]:
        if raw.startswith(b"{"):
            payloads = self._legacy_lines(raw, path)
        else:
            frames = read_frames(raw)
            for torn in frames.torn:
                self.reject(torn, f"torn record in {path.name} (writer stopped mid-write)")
            payloads = frames.payloads
        entries: list[SpoolEntry] = []
        for payload in payloads:
            try:
                entries.append(SpoolEntry.from_payload(payload))
            except (ValueError, KeyError, TypeError) as exc:
                self.reject(
                    payload,
                    f"unreadable record in {path.name} ({type(exc).__name__})",
                    "unreadable",
                )
        return entries

    def _legacy_lines(self, raw: bytes, path: Path) -> list[bytes]:
        """A file of the previous release: one JSON object per line, no frames."""
        lines = raw.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            self.reject(tail, f"torn last line in {path.name} (writer stopped mid-write)")
        return [line for line in lines if line.strip()]

    # -- draining --------------------------------------------------------------------

    def drain(self, sink: Sink, batch_size: int = 200) -> int:
        """Replay everything spooled so far into ``sink``, in order; returns records replayed.

        If ``sink`` raises, what was not yet acknowledged stays spooled and the error
        propagates. Records appended while draining are kept for the next round.
        """
        replayed = 0
        self.adopt_orphans()
        while True:
            with self._lock:
                orphan = self._orphans[0] if self._orphans else None
            if orphan is None:
                break
            _replay(orphan.entries, sink, batch_size)
            replayed += len(orphan.entries)
            with self._lock:
                self._orphans.remove(orphan)
                orphan.remove()
                if self._usage is not None:
                    self._usage.forget()
        with self._lock:
            snapshot = list(self._entries)
            offset = self._size
        if snapshot:
            _replay(snapshot, sink, batch_size)
            replayed += len(snapshot)
            with self._lock:
                self._forget_locked(len(snapshot), offset)
        return replayed

    def _forget_locked(self, count: int, offset: int) -> None:
        """Drop the first ``count`` entries (``offset`` bytes), which the database now holds."""
        if self._size == offset:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        else:
            os.lseek(self._fd, offset, os.SEEK_SET)
            remainder = b""
            while chunk := os.read(self._fd, 1 << 20):
                remainder += chunk
            new_fd = open_locked_new(self.directory, self._name, remainder)
            os.close(self._fd)
            self._fd = new_fd
        self._entries = self._entries[count:]
        self._size -= offset
        if self._usage is not None:
            self._usage.forget()

    def close(self) -> None:
        """Release the files. A non-empty spool stays on disk for the next process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._entries:
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            for orphan in self._orphans:
                os.close(orphan.fd)
            self._orphans.clear()


def _replay(entries: Sequence[SpoolEntry], sink: Sink, batch_size: int) -> None:
    for start in range(0, len(entries), batch_size):
        sink(entries[start : start + batch_size])
