"""Start real server processes on free loopback ports and wait until they answer.

Used by the end-to-end tests (``backpain-cds serve``, i.e. gunicorn) and by the
benchmarks (the service, the floor app, a FHIR endpoint).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]

#: Prefixes of the service's own settings, never inherited from the caller's environment.
SERVICE_ENV_PREFIXES = ("CDS_", "DATABASE_URL", "CORS_", "AUDIT_", "FHIR_", "MAX_", "PORTAL")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment minus the service's own knobs, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    name: str = "service"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_process(
    name: str,
    args: Sequence[str],
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    health_path: str = "/healthz",
    timeout: float = 60.0,
) -> ServerProcess:
    """Run ``python <args>`` and wait until ``health_path`` answers 200."""
    base = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(base, process, log_path, dict(env), name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            if requests.get(base + health_path, timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(
        f"{name} did not answer {health_path} in {timeout}s:\n{server.log()[-4000:]}"
    )


def serve_args(port: int, workers: int | None = None) -> list[str]:
    """``backpain-cds serve`` on loopback, as the image runs it (``python -m service.cli``)."""
    args = ["-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [*args, "--workers", str(workers)] if workers else args


def start_server(
    tmp_dir: Path, env: Mapping[str, str], *, workers: int = 1, timeout: float = 30.0
) -> ServerProcess:
    """Run ``backpain-cds serve`` with ``env`` on top of a clean environment."""
    port = free_port()
    full_env = clean_env(
        {
            "CDS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "AUDIT_SPOOL_DIR": str(tmp_dir / "spool"),
            **env,
        }
    )
    return start_process(
        "server", serve_args(port, workers), port, full_env, tmp_dir, timeout=timeout
    )
