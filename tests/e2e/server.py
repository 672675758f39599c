"""Start the real service (``backpain-cds serve``, i.e. gunicorn) on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(
    tmp_dir: Path, env: Mapping[str, str], *, workers: int = 1, timeout: float = 30.0
) -> ServerProcess:
    """Run ``backpain-cds serve`` with ``env`` on top of a clean environment."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CDS_", "DATABASE_URL", "CORS_", "AUDIT_"))
    }
    full_env.update(
        {
            "CDS_PUBLIC_URL": base,
            "AUDIT_SPOOL_DIR": str(tmp_dir / "spool"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    full_env.update(env)
    log_path = tmp_dir / f"server-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()  # the child holds its own descriptor
    server = ServerProcess(base_url=base, process=process, log_path=log_path, env=full_env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not become healthy in {timeout}s:\n{server.log()}")
