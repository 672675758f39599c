"""The garbage collector's pauses while a block of code runs (``gc.callbacks``).

A collection stops the whole worker: every thread waits, whatever request it serves.
What a worker keeps alive between calls decides how long each pause is, so the
longest pause is a figure of its own beside the mean cost per call.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pauses:
    #: collections by generation (0, 1, 2)
    collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    total_s: float = 0.0
    longest_s: float = 0.0
    _started: float = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.collections[info["generation"]] += 1
        self.total_s += took
        self.longest_s = max(self.longest_s, took)

    def summary(self, calls: int) -> dict[str, Any]:
        return {
            "calls": calls,
            "collections": list(self.collections),
            "ms_per_call": self.total_s / calls * 1000 if calls else 0.0,
            "longest_ms": self.longest_s * 1000,
        }


@contextmanager
def watched() -> Iterator[Pauses]:
    pauses = Pauses()
    gc.callbacks.append(pauses._callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses._callback)
