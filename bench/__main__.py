"""``python -m bench`` (``make bench``): every figure of issue 6 in one run.

Starts on loopback: the service under gunicorn with its production settings (auth on,
real ES384 tokens, audit on PostgreSQL found the way the tests find it), the floor
under the same gunicorn settings, and a FHIR endpoint. Prints a markdown table and
writes ``bench/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import requests

from bench import audit_bench, cpu, engine_bench, machine, report
from bench.auth import BenchClient, write_tokens
from bench.gunicorn_options import describe as describe_gunicorn
from bench.load import Target, TokenSource, fixed_rate, max_throughput, wrk_available
from bench.profile_hook import profile
from bench.servers import start_fhir_endpoint, start_floor, start_service
from bench.stats import ratio
from bench.workload import SERVICE_ID, Workload, fhir_resources, realistic_qr, workloads
from service.config import Settings
from service.http.server import gunicorn_options
from testkit.server import ServerProcess

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    warmup: float
    duration: float
    latency_duration: float
    audit_sizes: tuple[int, ...]
    audit_inserts: int
    profile_calls: int
    alg: str


def plan_from(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(2.0, 5.0, 8.0, (0, 1_000_000), 300, 150, args.alg)
    return Plan(3.0, 10.0, 15.0, (0, 1_000_000, 10_000_000), 500, 300, args.alg)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- HTTP --------------------------------------------------------------------------------


def _check_answers(
    service: ServerProcess, workload: Workload, client: BenchClient, alg: str
) -> None:
    """One call per workload before measuring: it must screen and raise the red flag."""
    url = f"{service.base_url}/cds-services/{SERVICE_ID}"
    token = client.tokens(alg, url, 1)[0]
    response = requests.post(
        url,
        json=workload.concrete(str(uuid.uuid4())),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(
            f"{workload.name}: the service answered {response.status_code}: {response.text[:500]}"
        )
    indicators = [card.get("indicator") for card in response.json().get("cards", [])]
    if "critical" not in indicators:
        raise RuntimeError(f"{workload.name}: expected a critical card, got {indicators}")


def _token_source(client: BenchClient, alg: str, audience: str, work_dir: Path) -> TokenSource:
    def sign(count: int) -> Path:
        name = f"tokens-{alg}-{uuid.uuid4().hex[:8]}.txt"
        return write_tokens(client.tokens(alg, audience, count), work_dir / name)

    return sign


def run_http(plan: Plan, database_url: str, client: BenchClient, work_dir: Path) -> dict[str, Any]:
    issuers = client.write_issuers_file(work_dir / "trusted-issuers.json")
    fhir = start_fhir_endpoint(fhir_resources(work_dir / "fhir-resources.json"), work_dir)
    floor = start_floor(work_dir)
    service = start_service(
        {
            "DATABASE_URL": database_url,
            "CDS_TRUSTED_ISSUERS": str(issuers),
            "AUDIT_SPOOL_DIR": str(work_dir / "spool"),
        },
        work_dir,
    )
    try:
        return _measure_http(plan, client, work_dir, floor, service, f"{fhir.base_url}/fhir")
    finally:
        for process in (service, floor, fhir):
            process.stop()


def _measure_http(
    plan: Plan,
    client: BenchClient,
    work_dir: Path,
    floor: ServerProcess,
    service: ServerProcess,
    fhir_base: str,
) -> dict[str, Any]:
    path = f"/cds-services/{SERVICE_ID}"
    service_url, floor_url = service.base_url + path, floor.base_url + path
    loads = workloads(fhir_base)
    for workload in loads:
        _check_answers(service, workload, client, plan.alg)
    bodies = {w.name: w.write(work_dir) for w in loads}
    titles = {w.name: w.title for w in loads}
    options = gunicorn_options(Settings.from_env(), "127.0.0.1", 0)
    connections = 2 * int(options["workers"]) * int(options["threads"])
    fresh = _token_source(client, plan.alg, service_url, work_dir)
    floor_pool = write_tokens(client.tokens(plan.alg, floor_url, 500), work_dir / "floor.txt")

    def same_pool(count: int) -> Path:
        return floor_pool  # the floor checks no token; same header size, no signing

    def closed(
        name: str, url: str, tokens: TokenSource, expected: float, server: ServerProcess
    ) -> dict[str, Any]:
        log(f"throughput: {name} ...")
        target = Target(name, url, bodies.get(name, bodies["hook"]), None)
        pids = cpu.descendants(server.process.pid) if cpu.available() else set()
        cpu_before = cpu.cpu_seconds(pids)
        result = max_throughput(
            target,
            tokens,
            expected_rps=expected,
            duration=plan.duration,
            warmup=plan.warmup,
            connections=connections,
            work_dir=work_dir,
        )
        served = result["requests"] + result.get("warmup_requests", 0)
        if pids and served:
            result["server_cpu_ms_per_request"] = (
                (cpu.cpu_seconds(pids) - cpu_before) / served * 1000
            )
        log(f"  {result['rps']:.0f} req/s, {result['errors']} errors")
        return result

    throughput: dict[str, Any] = {}
    throughput["floor"] = closed("floor", floor_url, same_pool, 5000, floor) | {"title": "floor"}
    ceiling = throughput["floor"]["rps"]
    for name in bodies:
        run = closed(name, service_url, fresh, ceiling, service)
        throughput[name] = run | {"title": titles[name]}
    other = "RS384" if plan.alg == "ES384" else "ES384"
    other_tokens = _token_source(client, other, service_url, work_dir)
    throughput[f"hook_{other}"] = closed("hook", service_url, other_tokens, ceiling, service) | {
        "title": f"{titles['hook']}, {other} tokens"
    }
    floor_cpu = throughput["floor"].get("server_cpu_ms_per_request")
    for run in throughput.values():
        run["vs_floor"] = ratio(run["rps"], ceiling)
        if floor_cpu and run.get("server_cpu_ms_per_request"):
            run["cpu_floor_over_hook"] = ratio(floor_cpu, run["server_cpu_ms_per_request"])

    latency: dict[str, Any] = {}

    def paced(name: str, url: str, tokens: TokenSource, rate: float, title: str) -> None:
        log(f"latency: {name} at {rate:.0f} req/s ...")
        target = Target(name, url, bodies.get(name, bodies["hook"]), None)
        result = fixed_rate(
            target,
            tokens,
            rate=rate,
            duration=plan.latency_duration,
            warmup=plan.warmup,
            work_dir=work_dir,
        )
        latency[name] = result | {"title": title}
        lat = result["latency_ms"] or {}
        log(f"  p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms")

    half = throughput["hook"]["rps"] / 2
    paced("floor", floor_url, same_pool, half, "floor, at the hook's half-max rate")
    for name in bodies:
        paced(name, service_url, fresh, throughput[name]["rps"] / 2, titles[name])
    floor_p99 = (latency["floor"]["latency_ms"] or {}).get("p99", 0.0)
    for run in latency.values():
        run["p99_vs_floor"] = ratio((run["latency_ms"] or {}).get("p99", 0.0), floor_p99)
    return {
        "gunicorn": describe_gunicorn(options),
        "connections": connections,
        "throughput": throughput,
        "latency": latency,
    }


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
    parser.add_argument("--alg", choices=("ES384", "RS384"), default="ES384")
    parser.add_argument("--skip-audit", action="store_true", help="no audit-growth runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    plan = plan_from(args)
    if not wrk_available():
        log("wrk not found (apt-get install wrk): throughput uses the Python generator")

    from testkit.pg import DatabaseFactory, postgres_server

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"alg": plan.alg, "quick": bool(args.quick), "plan": plan.__dict__}
    client = BenchClient.create()
    with tempfile.TemporaryDirectory(prefix="backpain-bench-") as tmp, postgres_server() as pg:
        work_dir = Path(tmp)
        databases = DatabaseFactory(pg)
        try:
            database_url = databases()
            results["machine"] = machine.describe(database_url)
            results |= timed("HTTP runs", lambda: run_http(plan, database_url, client, work_dir))
            results["headline"] = {
                "ratio": results["throughput"]["hook"]["vs_floor"],
                "p99_ms": (results["latency"]["hook"]["latency_ms"] or {}).get("p99"),
            }
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
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
