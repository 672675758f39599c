"""Python load generator, run as its own process: ``python -m bench.pace config.json``.

Two modes, chosen by the config's ``mode``:

* ``rate``: open loop at a fixed rate (what wrk2 does). Request *i* is due at
  ``t0 + i / rate``; its latency runs from when it was due, not from when a
  client thread got round to it, so a stalled server cannot hide its queue
  (no coordinated omission).
* ``closed``: N connections each sending as fast as answers come back (the
  fallback for throughput when wrk is not installed).

Requests due during the warm-up are sent but not counted. Prints one JSON object.
"""

from __future__ import annotations

import http.client
import itertools
import json
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.stats import LatencySummary

PLACEHOLDER = "@@HOOK_INSTANCE@@"


@dataclass(frozen=True)
class PaceConfig:
    url: str
    body_file: Path
    tokens_file: Path | None
    mode: str  # "rate" | "closed"
    duration: float
    warmup: float
    rate: float = 0.0
    connections: int = 16

    @classmethod
    def read(cls, path: Path) -> PaceConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        tokens = raw.get("tokens_file")
        return cls(
            url=raw["url"],
            body_file=Path(raw["body_file"]),
            tokens_file=Path(tokens) if tokens else None,
            mode=raw["mode"],
            duration=float(raw["duration"]),
            warmup=float(raw["warmup"]),
            rate=float(raw.get("rate", 0.0)),
            connections=int(raw.get("connections", 16)),
        )


class Requests:
    """Bodies with a fresh hookInstance and headers with a fresh token, per call."""

    def __init__(self, config: PaceConfig) -> None:
        template = config.body_file.read_text(encoding="utf-8")
        self.parts = template.split(PLACEHOLDER)
        self.tokens = (
            [t for t in config.tokens_file.read_text().splitlines() if t]
            if config.tokens_file
            else []
        )
        self._next = itertools.count()

    def next(self) -> tuple[bytes, dict[str, str]]:
        index = next(self._next)
        body = str(uuid.uuid4()).join(self.parts)
        headers = {"Content-Type": "application/json"}
        if self.tokens:
            headers["Authorization"] = "Bearer " + self.tokens[index % len(self.tokens)]
        return body.encode("utf-8"), headers


class Client:
    """One keep-alive connection; reconnects once when the server closed it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        for attempt in (1, 2):
            try:
                self.conn.request("POST", self.path, body=body, headers=headers)
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, ConnectionError, TimeoutError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt == 2:
                    return 0
        return 0


@dataclass
class Tally:
    latencies_ms: list[float]
    statuses: dict[int, int]
    lock: threading.Lock

    def add(self, latency_ms: float, status: int) -> None:
        with self.lock:
            self.latencies_ms.append(latency_ms)
            self.statuses[status] = self.statuses.get(status, 0) + 1


def run_rate(config: PaceConfig) -> dict[str, Any]:
    requests_ = Requests(config)
    tally = Tally([], {}, threading.Lock())
    due: queue.Queue[float | None] = queue.Queue()
    t0 = time.perf_counter() + 0.2
    measure_from = t0 + config.warmup
    total = round((config.warmup + config.duration) * config.rate)

    def worker() -> None:
        client = Client(config.url)
        while (scheduled := due.get()) is not None:
            body, headers = requests_.next()
            status = client.post(body, headers)
            done = time.perf_counter()
            if scheduled >= measure_from:
                tally.add((done - scheduled) * 1000.0, status)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(config.connections)]
    for thread in threads:
        thread.start()
    late = 0
    for i in range(total):
        scheduled = t0 + i / config.rate
        wait = scheduled - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.005:
            late += 1
        due.put(scheduled)
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.perf_counter() - measure_from
    return _result(config, tally, elapsed) | {"dispatched_late": late}


def run_closed(config: PaceConfig) -> dict[str, Any]:
    requests_ = Requests(config)
    tally = Tally([], {}, threading.Lock())
    start = time.perf_counter()
    measure_from = start + config.warmup
    deadline = measure_from + config.duration

    def worker() -> None:
        client = Client(config.url)
        while True:
            body, headers = requests_.next()
            sent = time.perf_counter()
            if sent >= deadline:
                return
            status = client.post(body, headers)
            done = time.perf_counter()
            if sent >= measure_from and done <= deadline:
                tally.add((done - sent) * 1000.0, status)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(config.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=config.warmup + config.duration + 60)
    return _result(config, tally, config.duration)


def _result(config: PaceConfig, tally: Tally, elapsed: float) -> dict[str, Any]:
    ok = sum(count for status, count in tally.statuses.items() if 200 <= status < 300)
    summary = LatencySummary.of(tally.latencies_ms) if tally.latencies_ms else None
    return {
        "generator": "python",
        "mode": config.mode,
        "target_rate": config.rate if config.mode == "rate" else None,
        "duration_s": elapsed,
        "requests": len(tally.latencies_ms),
        "ok": ok,
        "errors": len(tally.latencies_ms) - ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "rps": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": summary.as_dict() if summary else None,
    }


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m bench.pace CONFIG.json")
    config = PaceConfig.read(Path(argv[0]))
    result = run_rate(config) if config.mode == "rate" else run_closed(config)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
