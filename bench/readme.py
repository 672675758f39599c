"""The "after" column of bench/README.md, filled by ``make bench`` (never typed by hand).

The README marks each cell as ``<!-- after:NAME -->text<!-- /after -->``; ``fill``
replaces the text of every NAME it has a value for and leaves the others as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import report

_CELL = re.compile(r"<!-- after:(?P<name>[a-z0-9_]+) -->(?P<text>.*?)<!-- /after -->")


def fill(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in values:
            return match.group(0)
        return f"<!-- after:{name} -->{values[name]}<!-- /after -->"

    return _CELL.sub(replace, text)


def _fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def after_values(results: Mapping[str, Any]) -> dict[str, str]:
    """The README cells of one run, formatted."""
    f = report.figures(results)
    costs = results.get("costs", {})
    values = {
        "run": f"{results.get('finished_at', '?')}"
        + (" (--quick)" if results.get("quick") else ""),
        "machine": report.machine_line(results.get("machine", {})),
        "floor_rps": _fmt(f["floor_rps"], 1),
        "full_rps": _fmt(f["full_rps"], 1),
        "full_ratio": _fmt(f["full_ratio"]),
        "full_cpu_ratio": _fmt(f["full_cpu_ratio"]),
        "full_cpu_ms": _fmt(f["full_cpu_ms"], 2, " ms"),
        "floor_cpu_ms": _fmt(f["floor_cpu_ms"], 2, " ms"),
        "no_auth_rps": _fmt(f["no_auth_rps"], 1),
        "no_auth_ratio": _fmt(f["no_auth_ratio"]),
        "no_auth_cpu_ratio": _fmt(f["no_auth_cpu_ratio"]),
        "peer_ratio": _fmt(f["peer_ratio"]) if f["peer_ratio"] is not None else "not run",
        "us_per_answer": _fmt(f["us_per_answer"], 1, " us"),
        "p99_ms": _fmt(f["p99_ms"], 1, " ms"),
    }
    for name, key in (
        ("parse_us", "parse (fast path)"),
        ("reference_parse_us", "parse (fhir.resources, the reference)"),
        ("screen_us", "screen() total, QR never seen"),
        ("call_cpu_us", "whole hook call in process, CPU (test client, no profiler)"),
    ):
        values[name] = _fmt(costs.get(key), 0, " us")
    collected = (results.get("profile") or {}).get("gc") or {}
    per_call = collected.get("ms_per_call")
    values["gc_per_call_us"] = _fmt(None if per_call is None else per_call * 1000, 0, " us")
    values["gc_longest_ms"] = _fmt(collected.get("longest_ms"), 1, " ms")
    levels = (results.get("audit") or {}).get("levels") or [{}]
    for name, key in (("db_before_ms", "jti_then_record_ms"), ("db_after_ms", "jti_and_record_ms")):
        values[name] = _fmt(levels[0].get(key, {}).get("p50"), 2, " ms")
    return values


def update(path: Path, results: Mapping[str, Any]) -> None:
    path.write_text(fill(path.read_text(encoding="utf-8"), after_values(results)), "utf-8")
