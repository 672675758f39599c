"""The HTTP runs of ``make bench``: every server on loopback, in one run, one body.

Servers, all under the same gunicorn options (``service.http.server.gunicorn_options``):
the floor; the service with auth OFF (audit on PostgreSQL); the service with auth ON
(a fresh ES384 token per call, ``jti`` replay store and audit on PostgreSQL); a FHIR
endpoint for the ``fhirServer`` path; and, when asked and installed, HealthChain's
minimal service (the peer; gunicorn with uvicorn workers, the same worker count).

Every request differs (its hookInstance and its QR id carry a fresh uuid: no cache
keyed on content can answer). Ratios are against the floor measured in the same run
with the same body.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import cpu
from bench.auth import BenchClient, write_tokens
from bench.gunicorn_options import describe as describe_gunicorn
from bench.load import Target, TokenSource, fixed_rate, max_throughput
from bench.peer_healthchain import PATH as PEER_PATH
from bench.servers import start_fhir_endpoint, start_floor, start_peer, start_service
from bench.stats import ratio
from bench.workload import SERVICE_ID, fhir_resources, workloads
from service.config import Settings
from service.http.server import gunicorn_options
from testkit.server import ServerProcess

HOOK_PATH = f"/cds-services/{SERVICE_ID}"


@dataclass(frozen=True)
class Plan:
    warmup: float
    duration: float
    latency_duration: float
    audit_sizes: tuple[int, ...]
    audit_inserts: int
    profile_calls: int
    alg: str
    peer_python: Path | None = None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_answers(url: str, body: dict[str, Any], token: str | None, name: str) -> None:
    """One call before measuring: the hook must screen and raise the red flag."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.post(url, json=body, headers=headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{name}: answered {response.status_code}: {response.text[:500]}")
    indicators = [card.get("indicator") for card in response.json().get("cards", [])]
    if "critical" not in indicators:
        raise RuntimeError(f"{name}: expected a critical card, got {indicators}")


def _token_source(client: BenchClient, alg: str, audience: str, work_dir: Path) -> TokenSource:
    def sign(count: int) -> Path:
        name = f"tokens-{alg}-{uuid.uuid4().hex[:8]}.txt"
        return write_tokens(client.tokens(alg, audience, count), work_dir / name)

    return sign


@dataclass
class Servers:
    floor: ServerProcess
    service: ServerProcess
    service_no_auth: ServerProcess
    fhir: ServerProcess
    peer: ServerProcess | None

    def all(self) -> list[ServerProcess]:
        found = [self.peer, self.service, self.service_no_auth, self.floor, self.fhir]
        return [server for server in found if server is not None]


def run_http(plan: Plan, database_url: str, client: BenchClient, work_dir: Path) -> dict[str, Any]:
    started: list[ServerProcess] = []

    def keep(server: ServerProcess) -> ServerProcess:
        started.append(server)
        return server

    try:
        fhir = keep(start_fhir_endpoint(fhir_resources(work_dir / "fhir-resources.json"), work_dir))
        issuers = client.write_issuers_file(
            work_dir / "trusted-issuers.json", fhir_servers=[f"{fhir.base_url}/fhir"]
        )
        common = {"DATABASE_URL": database_url, "AUDIT_SPOOL_DIR": str(work_dir / "spool")}
        servers = Servers(
            floor=keep(start_floor(work_dir)),
            service=keep(start_service({**common, "CDS_TRUSTED_ISSUERS": str(issuers)}, work_dir)),
            service_no_auth=keep(start_service({**common, "CDS_AUTH": "off"}, work_dir)),
            fhir=fhir,
            peer=keep(start_peer(plan.peer_python, work_dir)) if plan.peer_python else None,
        )
        return _measure(plan, client, work_dir, servers, f"{fhir.base_url}/fhir")
    finally:
        for process in reversed(started):
            process.stop()


@dataclass(frozen=True)
class Run:
    """One closed-loop measurement: which server, which body, which tokens."""

    name: str
    title: str
    server: ServerProcess
    path: str
    body: str
    tokens: TokenSource


def _measure(
    plan: Plan, client: BenchClient, work_dir: Path, servers: Servers, fhir_base: str
) -> dict[str, Any]:
    loads = {w.name: w for w in workloads(fhir_base)}
    bodies = {name: w.write(work_dir) for name, w in loads.items()}
    service_url = servers.service.base_url + HOOK_PATH
    fresh = _token_source(client, plan.alg, service_url, work_dir)
    for workload in loads.values():
        token = client.tokens(plan.alg, service_url, 1)[0]
        _check_answers(service_url, workload.concrete(str(uuid.uuid4())), token, workload.name)
    hook = loads["hook"]
    no_auth_url = servers.service_no_auth.base_url + HOOK_PATH
    _check_answers(no_auth_url, hook.concrete(str(uuid.uuid4())), None, "hook, auth off")
    floor_url = servers.floor.base_url + HOOK_PATH
    floor_pool = write_tokens(client.tokens(plan.alg, floor_url, 500), work_dir / "floor.txt")

    def same_pool(count: int) -> Path:
        return floor_pool  # not checked by these servers: same header size, no signing

    other = "RS384" if plan.alg == "ES384" else "ES384"
    runs = [
        Run("floor", "floor", servers.floor, HOOK_PATH, "hook", same_pool),
        Run("hook_no_auth", "hook, auth off (audit on)", servers.service_no_auth, HOOK_PATH,
            "hook", same_pool),
        *[Run(name, w.title, servers.service, HOOK_PATH, name, fresh) for name, w in loads.items()],
        Run(f"hook_{other}", f"{hook.title}, {other} tokens", servers.service, HOOK_PATH, "hook",
            _token_source(client, other, service_url, work_dir)),
    ]  # fmt: skip
    if servers.peer is not None:
        runs.append(Run("peer_healthchain", "peer: HealthChain no-op card", servers.peer,
                        PEER_PATH, "hook", same_pool))  # fmt: skip
    options = gunicorn_options(Settings.from_env(), "127.0.0.1", 0)
    connections = 2 * int(options["workers"]) * int(options["threads"])
    throughput = {"floor": _closed(plan, runs[0], bodies, connections, work_dir, 5000.0)}
    ceiling = throughput["floor"]["rps"]  # bounds the token pools of the other runs
    for run in runs[1:]:
        throughput[run.name] = _closed(plan, run, bodies, connections, work_dir, ceiling)
    _ratios(throughput)
    latency = _latencies(plan, runs, bodies, throughput, work_dir)
    return {
        "gunicorn": describe_gunicorn(options),
        "connections": connections,
        "throughput": throughput,
        "latency": latency,
    }


def _closed(
    plan: Plan,
    run: Run,
    bodies: dict[str, Path],
    connections: int,
    work_dir: Path,
    expected_rps: float,
) -> dict[str, Any]:
    log(f"throughput: {run.title} ...")
    pids = cpu.descendants(run.server.process.pid) if cpu.available() else set()
    cpu_before = cpu.cpu_seconds(pids)
    result = max_throughput(
        Target(run.name, run.server.base_url + run.path, bodies[run.body], None),
        run.tokens,
        expected_rps=expected_rps,
        duration=plan.duration,
        warmup=plan.warmup,
        connections=connections,
        work_dir=work_dir,
    )
    served = result["requests"] + result.get("warmup_requests", 0)
    if pids and served:
        result["server_cpu_ms_per_request"] = (cpu.cpu_seconds(pids) - cpu_before) / served * 1000
    log(f"  {result['rps']:.0f} req/s, {result['errors']} errors")
    return result | {"title": run.title}


def _ratios(throughput: dict[str, Any]) -> None:
    floor = throughput["floor"]
    floor_cpu = floor.get("server_cpu_ms_per_request")
    for run in throughput.values():
        run["vs_floor"] = ratio(run["rps"], floor["rps"])
        if floor_cpu and run.get("server_cpu_ms_per_request"):
            run["cpu_floor_over_hook"] = ratio(floor_cpu, run["server_cpu_ms_per_request"])


def _latencies(
    plan: Plan,
    runs: list[Run],
    bodies: dict[str, Path],
    throughput: dict[str, Any],
    work_dir: Path,
) -> dict[str, Any]:
    """Open loop at half of each run's maximum (the floor at the full hook's half)."""
    latency: dict[str, Any] = {}

    def paced(run: Run, rate: float) -> None:
        log(f"latency: {run.title} at {rate:.0f} req/s ...")
        target = Target(run.name, run.server.base_url + run.path, bodies[run.body], None)
        result = fixed_rate(
            target, run.tokens, rate=rate, duration=plan.latency_duration,
            warmup=plan.warmup, work_dir=work_dir,
        )  # fmt: skip
        latency[run.name] = result | {"title": run.title}
        lat = result["latency_ms"] or {}
        log(f"  p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms")

    half_hook = throughput["hook"]["rps"] / 2
    for run in runs:
        if run.name.startswith("hook_") and run.name[5:] in {"ES384", "RS384"}:
            continue  # the other algorithm: throughput only
        rate = half_hook if run.name == "floor" else throughput[run.name]["rps"] / 2
        paced(run, rate)
    latency["floor"]["title"] = "floor, at the full hook's half-max rate"
    floor_p99 = (latency["floor"]["latency_ms"] or {}).get("p99", 0.0)
    for result in latency.values():
        result["p99_vs_floor"] = ratio((result["latency_ms"] or {}).get("p99", 0.0), floor_p99)
    return latency
