"""File plumbing for the spool: whole writes, fsync'd renames, locked creation, sizes."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_locked_new(directory: Path, final_name: str, content: bytes = b"") -> int:
    """Create ``final_name`` atomically, already locked (nobody can adopt it in between)."""
    tmp = directory / f".{final_name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if content:
            write_all(fd, content)
        os.fsync(fd)
        os.rename(tmp, directory / final_name)
        fsync_dir(directory)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd


def size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def mtime_or_zero(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class DirectoryUsage:
    """Bytes the files matching ``pattern`` (every worker's spool) take, against a cap.

    Rescanned at most once a second; in between this process adds what it appends,
    so the cap can be passed by at most a second of the other workers' appends.
    """

    def __init__(
        self, directory: Path, pattern: str, max_bytes: int, rescan_seconds: float = 1.0
    ) -> None:
        self.max_bytes = max_bytes
        self._directory = directory
        self._pattern = pattern
        self._rescan = rescan_seconds
        self._bytes = 0
        self._scanned_at = -rescan_seconds

    def reserve(self, size: int) -> bool:
        """Count ``size`` more bytes if they fit under the cap; False if they do not."""
        now = time.monotonic()
        if now - self._scanned_at >= self._rescan:
            self._bytes = sum(size_or_zero(path) for path in self._directory.glob(self._pattern))
            self._scanned_at = now
        if self._bytes + size > self.max_bytes:
            return False
        self._bytes += size
        return True

    def forget(self) -> None:
        """Files shrank (a drain): rescan before the next reservation."""
        self._scanned_at = float("-inf")

    @property
    def used(self) -> int:
        return self._bytes
