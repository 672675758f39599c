"""The gunicorn options ``backpain-cds serve`` uses, computed the same way.

Mirrors ``service.cli.serve`` so the floor runs under exactly the service's settings.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"


def gunicorn_options(
    host: str, port: int, workers: int | None = None, threads: int | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    config_path = Path(os.environ.get("GUNICORN_CONFIG") or DEFAULT_GUNICORN_CONFIG)
    if config_path.is_file():
        loaded = runpy.run_path(str(config_path))
        options.update({k: v for k, v in loaded.items() if not k.startswith("_")})
    options["bind"] = [f"{host}:{port}"]
    env = os.environ
    options["workers"] = workers or int(env.get("WEB_CONCURRENCY", options.get("workers", 2)))
    options["threads"] = threads or int(env.get("GUNICORN_THREADS", options.get("threads", 4)))
    return options


def describe(options: dict[str, Any]) -> dict[str, Any]:
    """The options that matter for a benchmark, JSON-ready."""
    keys = ("workers", "threads", "worker_class", "keepalive", "timeout", "preload_app")
    return {key: options[key] for key in keys if key in options and not callable(options[key])}
