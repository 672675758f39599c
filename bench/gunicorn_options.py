"""What a benchmark reports of the gunicorn options (computed by ``service.server``)."""

from __future__ import annotations

from typing import Any


def describe(options: dict[str, Any]) -> dict[str, Any]:
    """The options that matter for a benchmark, JSON-ready."""
    keys = ("workers", "threads", "worker_class", "keepalive", "timeout", "preload_app")
    return {key: options[key] for key in keys if key in options and not callable(options[key])}
