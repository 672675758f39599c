"""Processes the bench starts on loopback: the service, the floor, a FHIR endpoint, the peer."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from testkit.server import (
    ROOT,
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


def start_peer(python: Path, log_dir: Path, timeout: float = 60.0) -> ServerProcess:
    """HealthChain's minimal service (``bench.peer_healthchain``) run by ``python``, the
    interpreter of a virtualenv that has HealthChain and gunicorn."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"peer-{port}.log"
    env = clean_env({})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(python), "-m", "bench.peer_healthchain", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ServerProcess(base, process, log_path, env, "peer")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the peer exited with {process.returncode}:\n{server.log()[-4000:]}"
            )
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the peer did not answer /healthz in {timeout}s:\n{server.log()[-4000:]}")


def peer_python(explicit: Path | None) -> Path | None:
    """The interpreter that can run the HealthChain peer: ``explicit``, else ``.venv-peer``,
    else this one if it imports healthchain; None when none can."""
    candidates = (
        [explicit] if explicit else [ROOT / ".venv-peer" / "bin" / "python", Path(sys.executable)]
    )
    for python in candidates:
        if python is None or not python.exists():
            continue
        probe = [str(python), "-c", "import healthchain, gunicorn, uvicorn"]
        if subprocess.run(probe, capture_output=True, timeout=120).returncode == 0:
            return python
    return None
