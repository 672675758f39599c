"""The markdown tables of a bench run (pure: results dict in, text out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Targets of issue 15 (ratios against the floor of the same run, same body and gunicorn
#: settings), and issue 6's latency target kept by it.
TARGET_FULL_HOOK_RATIO = 0.25
TARGET_NO_AUTH_RATIO = 0.5
TARGET_US_PER_ANSWER = 20.0
TARGET_P99_MS = 25.0
#: screen() per answer is read at this QR size (the largest of the growth run)
ANSWERS_FOR_TARGET = 1000


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


def figures(results: Mapping[str, Any]) -> dict[str, float | None]:
    """The figures the targets are about, from a results dict (None when not measured)."""
    throughput = results.get("throughput", {})
    latency = results.get("latency", {})

    def tp(name: str, key: str) -> float | None:
        value = throughput.get(name, {}).get(key)
        return None if value is None else float(value)

    points = results.get("engine", {}).get("answers", {}).get("points", [])
    per_answer = next(
        (p["us"] / p["size"] for p in points if p["size"] == ANSWERS_FOR_TARGET), None
    )
    p99 = (latency.get("hook", {}).get("latency_ms") or {}).get("p99")
    return {
        "full_ratio": tp("hook", "vs_floor"),
        "full_cpu_ratio": tp("hook", "cpu_floor_over_hook"),
        "no_auth_ratio": tp("hook_no_auth", "vs_floor"),
        "no_auth_cpu_ratio": tp("hook_no_auth", "cpu_floor_over_hook"),
        "peer_ratio": tp("peer_healthchain", "vs_floor"),
        "us_per_answer": per_answer,
        "p99_ms": None if p99 is None else float(p99),
        "floor_rps": tp("floor", "rps"),
        "full_rps": tp("hook", "rps"),
        "no_auth_rps": tp("hook_no_auth", "rps"),
        "peer_rps": tp("peer_healthchain", "rps"),
        "full_cpu_ms": tp("hook", "server_cpu_ms_per_request"),
        "floor_cpu_ms": tp("floor", "server_cpu_ms_per_request"),
    }


def _at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def _at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def headline(results: Mapping[str, Any]) -> str:
    f = figures(results)
    peer = f["peer_ratio"]
    rows = [
        [
            "full hook / floor, req/s (ES384 per call, PostgreSQL audit)",
            _ratio(f["full_ratio"]),
            f">= {TARGET_FULL_HOOK_RATIO}",
            _verdict(_at_least(f["full_ratio"], TARGET_FULL_HOOK_RATIO)),
        ],
        [
            "full hook: floor CPU / hook CPU per request (robust to other load)",
            _ratio(f["full_cpu_ratio"]),
            f">= {TARGET_FULL_HOOK_RATIO}",
            _verdict(_at_least(f["full_cpu_ratio"], TARGET_FULL_HOOK_RATIO)),
        ],
        [
            "hook with auth off / floor, req/s (audit on)",
            _ratio(f["no_auth_ratio"]),
            f">= {TARGET_NO_AUTH_RATIO}",
            _verdict(_at_least(f["no_auth_ratio"], TARGET_NO_AUTH_RATIO)),
        ],
        [
            f"screen() per answer ({ANSWERS_FOR_TARGET:,}-answer QR, in process)",
            f"{_num(f['us_per_answer'])} us",
            f"<= {TARGET_US_PER_ANSWER:g} us",
            _verdict(_at_most(f["us_per_answer"], TARGET_US_PER_ANSWER)),
        ],
        [
            "full hook p99 at half its max rate",
            f"{_num(f['p99_ms'])} ms",
            f"<= {TARGET_P99_MS:g} ms",
            _verdict(_at_most(f["p99_ms"], TARGET_P99_MS)),
        ],
    ]
    if peer is not None or results.get("peer_requested"):
        rows.append(
            [
                "peer: HealthChain no-op card / floor, req/s",
                _ratio(peer),
                "full hook >= peer",
                _verdict(
                    None if peer is None or f["full_ratio"] is None else f["full_ratio"] >= peer
                ),
            ]
        )
    return table(["figure (issue 15)", "value", "target", "verdict"], rows)


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
        inv = level["record_invocation_ms"]
        before, now = level.get("jti_then_record_ms", {}), level.get("jti_and_record_ms", {})
        rows.append(
            [
                f"{level['rows']:,}",
                _num(inv["p50"], 2),
                _num(inv["p99"], 2),
                _ratio(level.get("p50_vs_empty")),
                _num(before.get("p50"), 2),
                _num(now.get("p50"), 2),
                _num(now.get("p99"), 2),
                _num(level.get("fill_s"), 0),
            ]
        )
    return table(
        [
            "rows already in audit",
            "insert p50 ms",
            "insert p99 ms",
            "p50 vs empty",
            "jti + insert before (2 transactions) p50 ms",
            "jti + insert now (1 statement) p50 ms",
            "now p99 ms",
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
        "## Headline: issue 15's targets, on the machine above",
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
