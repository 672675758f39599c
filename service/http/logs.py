"""Logging as one JSON object per line; ``configure_logging`` is called once per process by
the CLI (never by ``create_app``).

What never appears in a log line: the JWT, the ``Authorization`` header, the FHIR
``access_token``, query strings, request bodies, answers or any patient data.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from service.http.trace import current_or_none

REQUEST_LOGGER = "service.request"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, pid, request_id, fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        trace = current_or_none()
        if trace is not None:
            entry["request_id"] = trace.request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str) -> dict[str, Any]:
    """``logging.config.dictConfig`` input: everything as JSON lines on stdout.

    Also used as gunicorn's ``logconfig_dict`` so gunicorn's own messages are
    JSON too; gunicorn's access log is switched off (the app logs each request).
    """
    name = level.strip().upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"LOG_LEVEL: unknown level {level!r} (use DEBUG, INFO, WARNING, ERROR)")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": name, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": name, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str) -> None:
    """Call once at process start (the CLI does); not from ``create_app``."""
    logging.config.dictConfig(logging_config(level))
