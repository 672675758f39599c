"""Self-delimiting records for append-only files: a torn write loses only itself.

A frame is one line: ``<length>:<crc32>:<payload>\\n``, length and CRC-32 of the
payload as 8 lowercase hex digits each. A reader takes a frame only when its length,
checksum and closing newline all hold; anything else (a record cut short by a crash,
a stray fragment, garbage) is skipped up to the next position where a whole valid
frame starts, and handed back as a torn segment. So a torn record never swallows
the good records written after it.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

_HEADER = re.compile(rb"([0-9a-f]{8}):([0-9a-f]{8}):")
_HEADER_BYTES = 18
MAX_PAYLOAD = 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"record of {len(payload)} bytes is too large to frame")
    return b"%08x:%08x:%s\n" % (len(payload), zlib.crc32(payload), payload)


@dataclass
class Frames:
    """What a file held: the payloads of whole frames, in order, and the torn segments."""

    payloads: list[bytes] = field(default_factory=list)
    torn: list[bytes] = field(default_factory=list)


def _frame_at(raw: bytes, position: int) -> bytes | None:
    """The payload of a valid frame starting exactly at ``position``, else None."""
    found = _HEADER.match(raw, position)
    if found is None:
        return None
    start = position + _HEADER_BYTES
    end = start + int(found[1], 16)
    if raw[end : end + 1] != b"\n":
        return None
    payload = raw[start:end]
    return payload if zlib.crc32(payload) == int(found[2], 16) else None


def _next_frame(raw: bytes, after: int) -> int:
    """Where the next valid frame after ``after`` starts (``len(raw)`` if none does)."""
    candidate = _HEADER.search(raw, after + 1)
    while candidate is not None:  # candidates may overlap: step one byte, not one match
        if _frame_at(raw, candidate.start()) is not None:
            return candidate.start()
        candidate = _HEADER.search(raw, candidate.start() + 1)
    return len(raw)


def read_frames(raw: bytes) -> Frames:
    frames = Frames()
    position = 0
    while position < len(raw):
        payload = _frame_at(raw, position)
        if payload is not None:
            frames.payloads.append(payload)
            position += _HEADER_BYTES + len(payload) + 1
            continue
        resume = _next_frame(raw, position)
        frames.torn.append(raw[position:resume])
        position = resume
    return frames
