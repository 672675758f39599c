"""Processes the bench starts on loopback: the service, the floor, a FHIR endpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Started:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment minus the service's own knobs, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CDS_", "DATABASE_URL", "CORS_", "AUDIT_", "FHIR_", "MAX_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start(
    name: str,
    args: Sequence[str],
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    health_path: str = "/healthz",
    timeout: float = 60.0,
) -> Started:
    """Run ``python <args>`` and wait until ``health_path`` answers 200."""
    base = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    started = Started(name=name, base_url=base, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{started.log()[-4000:]}")
        try:
            if requests.get(base + health_path, timeout=1).status_code == 200:
                return started
        except requests.RequestException:
            pass
        time.sleep(0.1)
    started.stop()
    raise RuntimeError(
        f"{name} did not answer {health_path} in {timeout}s:\n{started.log()[-4000:]}"
    )


def start_service(env: Mapping[str, str], log_dir: Path, workers: int | None = None) -> Started:
    """``backpain-cds serve`` (gunicorn, production settings) on a free loopback port."""
    port = free_port()
    full = clean_env({"CDS_PUBLIC_URL": f"http://127.0.0.1:{port}", **env})
    args = ["-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        args += ["--workers", str(workers)]
    return start("service", args, port, full, log_dir)


def start_floor(log_dir: Path, workers: int | None = None) -> Started:
    port = free_port()
    args = ["-m", "bench.floor", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        args += ["--workers", str(workers)]
    return start("floor", args, port, clean_env({}), log_dir)


def start_fhir_endpoint(resources_file: Path, log_dir: Path) -> Started:
    """``bench.fhir_endpoint`` serving the resources in ``resources_file``."""
    port = free_port()
    args = ["-m", "bench.fhir_endpoint", "--port", str(port), str(resources_file)]
    return start("fhir", args, port, clean_env({}), log_dir, health_path="/fhir/metadata")
