"""Processes the bench starts on loopback: the service, the floor, a FHIR endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from testkit.server import (
    ServerProcess,
    clean_env,
    free_port,
    serve_args,
    start_process,
)


def start_service(
    env: Mapping[str, str], log_dir: Path, workers: int | None = None
) -> ServerProcess:
    """``backpain-cds serve`` (gunicorn, production settings) on a free loopback port."""
    port = free_port()
    full = clean_env({"CDS_PUBLIC_URL": f"http://127.0.0.1:{port}", **env})
    return start_process("service", serve_args(port, workers), port, full, log_dir)


def start_floor(log_dir: Path, workers: int | None = None) -> ServerProcess:
    port = free_port()
    args = ["-m", "bench.floor", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        args += ["--workers", str(workers)]
    return start_process("floor", args, port, clean_env({}), log_dir)


def start_fhir_endpoint(resources_file: Path, log_dir: Path) -> ServerProcess:
    """``bench.fhir_endpoint`` serving the resources in ``resources_file``."""
    port = free_port()
    args = ["-m", "bench.fhir_endpoint", "--port", str(port), str(resources_file)]
    return start_process("fhir", args, port, clean_env({}), log_dir, health_path="/fhir/metadata")
