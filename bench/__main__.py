"""``python -m bench`` (``make bench``): every figure of issues 6 and 15 in one run.

Starts on loopback (``bench.http_runs``): the floor, the service with auth off and with
auth on (real ES384 tokens, audit on PostgreSQL found the way the tests find it), all
under the same gunicorn settings, a FHIR endpoint, and with ``--peer healthchain`` the
HealthChain peer. Then the in-process figures (engine, screen() per answer, the phases
of one call, a profile) and the audit growth. Prints markdown tables against the issue's
targets, writes ``bench/results/latest.json`` and ``latest.md``, and fills the "after"
column of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from bench import audit_bench, engine_bench, machine, readme, report
from bench.auth import BenchClient
from bench.http_runs import Plan, log, run_http
from bench.load import wrk_available
from bench.profile_hook import profile
from bench.servers import peer_python
from bench.workload import realistic_qr, workloads

RESULTS_DIR = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent / "README.md"


def plan_from(args: argparse.Namespace, peer: Path | None) -> Plan:
    if args.smoke:
        return Plan(0.5, 1.0, 2.0, (0, 1_000), 50, 20, args.alg, peer)
    if args.quick:
        return Plan(2.0, 5.0, 8.0, (0, 1_000_000), 300, 150, args.alg, peer)
    return Plan(3.0, 10.0, 15.0, (0, 1_000_000, 10_000_000), 500, 300, args.alg, peer)


# -- in process ----------------------------------------------------------------------------


def jwt_costs(client: BenchClient) -> dict[str, float]:
    costs = {}
    for alg in ("ES384", "RS384"):
        key = client.key(alg)
        token = client.tokens(alg, "http://bench.invalid/x", 1)[0]
        public = key.private.public_key()

        def verify(t: str = token, k: Any = public, a: str = alg) -> object:
            return jwt.decode(t, k, algorithms=[a], audience="http://bench.invalid/x")

        costs[f"verify JWT {alg} signature"] = engine_bench.per_call_us(verify)
    return costs


def timed(label: str, step: Callable[[], Any]) -> Any:
    log(f"{label} ...")
    start = time.perf_counter()
    value = step()
    log(f"  done in {time.perf_counter() - start:.0f} s")
    return value


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs; audit up to 1M rows")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long runs that check the harness end to end (figures meaningless; "
        "implies --no-readme)",
    )
    parser.add_argument("--alg", choices=("ES384", "RS384"), default="ES384")
    parser.add_argument("--skip-audit", action="store_true", help="no audit-growth runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--peer", choices=("healthchain",), help="also measure HealthChain's minimal service"
    )
    parser.add_argument(
        "--peer-python", type=Path, help="the interpreter of a venv with healthchain, gunicorn"
    )
    parser.add_argument(
        "--no-readme", action="store_true", help="leave bench/README.md's 'after' column"
    )
    args = parser.parse_args(argv)
    peer = None
    if args.peer:
        peer = peer_python(args.peer_python)
        if peer is None:
            log("--peer healthchain: no interpreter with healthchain + gunicorn (see README)")
    plan = plan_from(args, peer)
    if not wrk_available():
        log("wrk not found (apt-get install wrk): throughput uses the Python generator")

    from testkit.pg import DatabaseFactory, postgres_server

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "alg": plan.alg,
        "quick": bool(args.quick or args.smoke),
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in plan.__dict__.items()},
        "peer_requested": args.peer,
    }
    client = BenchClient.create()
    with tempfile.TemporaryDirectory(prefix="backpain-bench-") as tmp, postgres_server() as pg:
        work_dir = Path(tmp)
        databases = DatabaseFactory(pg)
        try:
            database_url = databases()
            results["machine"] = machine.describe(database_url)
            results |= timed("HTTP runs", lambda: run_http(plan, database_url, client, work_dir))
            qr = realistic_qr()
            results["engine"] = timed(
                "engine micro-benchmarks",
                lambda: {
                    "rules": engine_bench.rules_growth(),
                    "answers": engine_bench.qr_growth(qr),
                },
            )
            results["costs"] = jwt_costs(client) | engine_bench.screen_phases(qr)
            hook = next(w for w in workloads(None) if w.name == "hook")
            issuers = client.write_issuers_file(work_dir / "profile-issuers.json")
            results["profile"] = timed(
                "profile",
                lambda: profile(
                    database_url, client, issuers, hook, args.out, work_dir / "profile-spool",
                    calls=plan.profile_calls, alg=plan.alg,
                ),
            )  # fmt: skip
            results["costs"]["whole hook call in process, CPU (test client, no profiler)"] = (
                results["profile"]["cpu_ms_per_call"] * 1000
            )
            results["costs"]["whole hook call in process, wall (DB commits included)"] = (
                results["profile"]["wall_ms_per_call"] * 1000
            )
            collected = results["profile"]["gc"]
            results["costs"]["garbage collection per call, in process (mean)"] = (
                collected["ms_per_call"] * 1000
            )
            results["costs"][
                f"longest garbage-collection pause over {collected['calls']} calls, in process"
            ] = collected["longest_ms"] * 1000
        finally:
            databases.drop_all()
        if not args.skip_audit:
            results["audit"] = timed(
                "audit growth",
                lambda: audit_bench.run(
                    pg, work_dir, plan.audit_sizes, inserts=plan.audit_inserts, log=log
                ),
            )
    results["elapsed_s"] = time.perf_counter() - started
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    (args.out / "latest.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    markdown = report.render(results)
    (args.out / "latest.md").write_text(markdown, encoding="utf-8")
    if not (args.no_readme or args.smoke):
        readme.update(README, results)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
