"""The markdown tables of a bench run (pure: results dict in, text out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Targets from issue 6.
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "met" if ok else "NOT met"


def headline(results: Mapping[str, Any]) -> str:
    ratio = results.get("headline", {}).get("ratio")
    p99 = results.get("headline", {}).get("p99_ms")
    return table(
        ["figure", "value", "target", "verdict"],
        [
            [
                "hook / floor throughput (auth + audit on)",
                _ratio(ratio),
                f">= {TARGET_RATIO}",
                _verdict(None if ratio is None else ratio >= TARGET_RATIO),
            ],
            [
                "hook p99 at half its max rate",
                f"{_num(p99)} ms",
                f"< {TARGET_P99_MS:g} ms",
                _verdict(None if p99 is None else p99 < TARGET_P99_MS),
            ],
        ],
    )


def throughput_table(results: Mapping[str, Any]) -> str:
    rows = []
    for name, run in results.get("throughput", {}).items():
        rows.append(
            [
                run.get("title", name),
                _num(run.get("rps")),
                _ratio(run.get("vs_floor")),
                _num(run.get("server_cpu_ms_per_request"), 2),
                _ratio(run.get("cpu_floor_over_hook")),
                _num(run["latency_ms"]["p50"], 2) if run.get("latency_ms") else "n/a",
                str(run.get("errors", "n/a")),
            ]
        )
    header = [
        "closed loop, max throughput",
        "req/s",
        "vs floor",
        "server CPU ms/req",
        "floor CPU / this CPU",
        "p50 ms",
        "errors",
    ]
    return table(header, rows)


def latency_table(results: Mapping[str, Any]) -> str:
    rows = []
    for name, run in results.get("latency", {}).items():
        lat = run.get("latency_ms") or {}
        rows.append(
            [
                run.get("title", name),
                _num(run.get("target_rate")),
                _num(lat.get("p50"), 2),
                _num(lat.get("p95"), 2),
                _num(lat.get("p99"), 2),
                _ratio(run.get("p99_vs_floor")),
                str(run.get("errors", "n/a")),
            ]
        )
    return table(
        ["open loop, fixed rate", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99 vs floor", "errors"],
        rows,
    )


def growth_table(title: str, growth: Mapping[str, Any], per: str) -> str:
    rows = []
    points = growth.get("points", [])
    ratios = [None, *growth.get("cost_ratios", [])]
    slopes = [None, *growth.get("growth_exponents", [])]
    for point, step, slope in zip(points, ratios, slopes, strict=False):
        rows.append(
            [
                f"{point['size']:,}",
                _num(point["us"]),
                _num(point["us"] / point["size"], 2),
                "" if step is None else f"x{step:.1f}",
                "" if slope is None else f"{slope:.2f}",
            ]
        )
    verdict = "linear (or better)" if growth.get("linear") else "WORSE than linear"
    return f"{title}: {verdict}\n\n" + table(
        [growth.get("unit", "size"), "us / call", f"us / {per}", "cost x", "log-log slope"], rows
    )


def phases_table(phases: Mapping[str, float]) -> str:
    return table(["in-process cost", "us"], [[name, _num(us)] for name, us in phases.items()])


def audit_table(audit: Mapping[str, Any]) -> str:
    rows = []
    for level in audit.get("levels", []):
        inv, jti = level["record_invocation_ms"], level["remember_jti_ms"]
        rows.append(
            [
                f"{level['rows']:,}",
                _num(inv["p50"], 2),
                _num(inv["p99"], 2),
                _ratio(level.get("p50_vs_empty")),
                _num(jti["p50"], 2),
                _num(level.get("fill_s"), 0),
            ]
        )
    return table(
        [
            "rows already in audit",
            "insert p50 ms",
            "insert p99 ms",
            "p50 vs empty",
            "jti insert p50 ms",
            "fill s",
        ],
        rows,
    )


def machine_line(machine: Mapping[str, Any]) -> str:
    pg = machine.get("postgres", {})
    return (
        f"{machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB; "
        f"Linux {machine.get('kernel')}; Python {machine.get('python')}; "
        f"PostgreSQL {pg.get('server_version')} (synchronous_commit={pg.get('synchronous_commit')},"
        f" fsync={pg.get('fsync')}); load: {machine.get('wrk') or 'python generator'}"
    )


def render(results: Mapping[str, Any]) -> str:
    parts = [
        f"# Bench results ({results.get('finished_at', '')})",
        f"Machine: {machine_line(results.get('machine', {}))}",
        f"Server: gunicorn {results.get('gunicorn', {})}; auth {results.get('alg')} JWT "
        "(fresh token per call), audit on PostgreSQL.",
        "## Headline",
        headline(results),
        "## Throughput",
        throughput_table(results),
        "## Latency at half the maximum rate",
        latency_table(results),
    ]
    engine = results.get("engine", {})
    if engine.get("rules"):
        rules = growth_table("evaluate() vs rule count", engine["rules"], "rule")
        parts += ["## Engine alone", rules]
    if engine.get("answers"):
        parts += [growth_table("screen() vs QR answers", engine["answers"], "answer")]
    if results.get("costs"):
        parts += ["## Where one call's time goes (in process)", phases_table(results["costs"])]
    if results.get("audit"):
        parts += ["## Audit insert cost as the trail grows", audit_table(results["audit"])]
    if results.get("profile"):
        profile = results["profile"]
        parts += [f"Profile: `{profile.get('html')}`, `{profile.get('text')}`"]
    return "\n\n".join(parts) + "\n"
