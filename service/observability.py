"""Operations view of the service: request ids, one JSON log line per request, ``/metrics``.

``install(app, settings, audit)`` wires all three into one Flask app.
``configure_logging(level)`` is called once per process by the CLI (never by
``create_app``): every log record then leaves as one JSON object per line.

What never appears in a log line or a metric label: the JWT, the
``Authorization`` header, the FHIR ``access_token``, query strings, request
bodies, answers or any patient data. A request is described by references
only (request id, audit invocation id, service id, rule ids, indicators).

Metrics and gunicorn: each gunicorn worker is its own process. When the
``PROMETHEUS_MULTIPROC_DIR`` environment variable (prometheus-client's own
switch, read by the library at import time) names a writable directory, the
counters live in memory-mapped files there and ``/metrics`` aggregates every
worker; ``deploy/gunicorn.conf.py`` empties the directory at start and marks
dead workers. Without it, each app has its own ``CollectorRegistry`` (so
``create_app`` may run many times in one process, as the tests do).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from service.config import Settings
from service.http.auditing import is_audited
from service.http.runtime import EXTENSION_KEY

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_LOGGER = "service.request"
METRICS_PATH = "/metrics"
#: prometheus-client's switch for multi-process (gunicorn) mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: A caller's request id is kept when it is 1-128 printable ASCII characters.
_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")
#: Latency buckets, seconds: the CDS Hooks target is ~500 ms.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MAX_PATH = 256
_MAX_HOOK = 64

request_log = logging.getLogger(REQUEST_LOGGER)
log = logging.getLogger(__name__)


class HealthSource(Protocol):
    """The part of the audit trail the metrics read (``AuditTrail.health``)."""

    def health(self) -> Mapping[str, Any]: ...


# --------------------------------------------------------------------------- request id


def accepted_request_id(header: str | None) -> str | None:
    """The caller's ``X-Request-ID`` if it is safe to echo and log, else None."""
    if header is None:
        return None
    value = header.strip()
    return value if _REQUEST_ID.fullmatch(value) else None


def current_request_id() -> str:
    """This request's id; assigned on first use (also for requests rejected early)."""
    value = g.get("request_id")
    if not isinstance(value, str):
        value = accepted_request_id(request.headers.get(REQUEST_ID_HEADER)) or str(uuid.uuid4())
        g.request_id = value
    return value


# --------------------------------------------------------------------------- logging


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
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
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


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """The service's own counters and histograms."""

    requests: Counter
    latency: Histogram
    cards: Counter
    database_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> Metrics:
        return cls(
            requests=Counter(
                "backpain_cds_http_requests",
                "HTTP requests answered, by route, CDS service, method and status.",
                ["endpoint", "service", "method", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "backpain_cds_http_request_duration_seconds",
                "Time to answer an HTTP request, by route, CDS service and status.",
                ["endpoint", "service", "status"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            cards=Counter(
                "backpain_cds_cards_issued",
                "CDS Hooks cards issued, by CDS service, indicator and rule id.",
                ["service", "indicator", "rule_id"],
                registry=registry,
            ),
            database_errors=Counter(
                "backpain_cds_database_errors",
                "Audit database errors: failed audit database operations (check=audit), "
                "and health checks that found the database down (metrics, readiness).",
                ["check"],
                registry=registry,
            ),
        )


class MetricSource(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Scrape(Collector):
    """One scrape: the base metrics plus the audit health read right now."""

    def __init__(self, base: Iterable[MetricSource], health: Mapping[str, Any]) -> None:
        self._base = tuple(base)
        self._health = health

    def collect(self) -> Iterator[Metric]:
        for collector in self._base:
            yield from collector.collect()
        yield GaugeMetricFamily(
            "backpain_cds_audit_spool_depth",
            "Audit records waiting in the local spool for the database.",
            value=_spool_depth(self._health),
        )
        yield GaugeMetricFamily(
            "backpain_cds_database_up",
            "1 when the audit database answered the last health check, else 0.",
            value=1.0 if database_up(self._health) else 0.0,
        )


def database_up(health: Mapping[str, Any]) -> bool:
    return health.get("database") == "up"


def _spool_depth(health: Mapping[str, Any]) -> float:
    depth = health.get("spool_depth")
    return float(depth) if isinstance(depth, int | float) else 0.0


def multiprocess_dir() -> str | None:
    """prometheus-client's multi-process directory, when gunicorn runs several workers."""
    return os.environ.get(MULTIPROC_ENV) or None


class MetricsEndpoint:
    """Owns the registry (or the multi-process files) for one app."""

    def __init__(self, audit: HealthSource, multiproc: str | None) -> None:
        self._audit = audit
        self._multiproc = multiproc
        if multiproc:
            # Values go to the mmap files; collection reads every worker's files.
            self._registry: CollectorRegistry | None = None
            self.metrics = Metrics.create(None)
        else:
            self._registry = CollectorRegistry()
            self.metrics = Metrics.create(self._registry)
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)

    def _health(self) -> Mapping[str, Any]:
        try:
            return self._audit.health()
        except Exception:  # a scrape must still answer; count it as the DB being down
            log.exception("audit health check failed during a metrics scrape")
            return {"database": "down", "spool_depth": 0}

    def render(self) -> bytes:
        health = self._health()
        if not database_up(health):
            self.metrics.database_errors.labels(check="metrics").inc()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Scrape([self._base()], health))
        return generate_latest(registry)

    def _base(self) -> MetricSource:
        if self._registry is not None:
            return self._registry
        collector: MetricSource = MultiProcessCollector(None, path=self._multiproc)  # type: ignore[no-untyped-call]
        return collector


# --------------------------------------------------------------------------- per request


@dataclass(frozen=True)
class RequestSummary:
    """What one request tells operations; references only, never PHI or tokens."""

    method: str
    path: str
    endpoint: str
    service: str
    status: int
    latency_ms: float
    hook: str | None
    rule_ids: tuple[str, ...]
    indicators: tuple[str, ...]
    error: str | None
    invocation_id: str | None
    client_iss: str | None

    def log_fields(self, request_id: str) -> dict[str, Any]:
        return {
            "request_id": request_id,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "service": self.service or None,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 2),
            "hook": self.hook,
            "rules": list(self.rule_ids),
            "indicators": list(self.indicators),
            "error": self.error,
            "invocation_id": self.invocation_id,
            "client_iss": self.client_iss,
        }


def _findings() -> tuple[Any, ...]:
    result = g.get("hook_result")
    if result is None:
        return ()
    return tuple(result.screening.evaluation.findings)


def _service_label(known: Mapping[str, Any]) -> str:
    """The service id when known; "unknown" for other ids; "" off /cds-services/{id}.

    Bounded on purpose: a label per arbitrary path segment would let any client
    grow the metrics without limit.
    """
    view_args = request.view_args or {}
    service_id = view_args.get("service_id")
    if isinstance(service_id, str) and service_id in known:
        return service_id
    return "unknown" if service_id is not None else ""


def summarize(response: Response, latency_ms: float, known: Mapping[str, Any]) -> RequestSummary:
    findings = _findings()
    problem = g.get("problem")
    hook = g.get("hook")
    invocation = g.get("invocation_id") if is_audited() else None
    return RequestSummary(
        method=request.method,
        path=request.path[:_MAX_PATH],
        endpoint=request.url_rule.rule if request.url_rule is not None else "unmatched",
        service=_service_label(known),
        status=response.status_code,
        latency_ms=latency_ms,
        hook=hook[:_MAX_HOOK] if isinstance(hook, str) else None,
        rule_ids=tuple(str(f.rule_id) for f in findings),
        indicators=tuple(str(f.indicator) for f in findings),
        error=getattr(problem, "code", None) if problem is not None else None,
        invocation_id=str(invocation) if invocation is not None else None,
        client_iss=g.get("client_iss"),
    )


def _known_services(app: Flask) -> Mapping[str, Any]:
    runtime = app.extensions.get(EXTENSION_KEY)
    services = getattr(getattr(runtime, "handler", None), "services", None)
    return services if isinstance(services, Mapping) else {}


def _observe(metrics: Metrics, summary: RequestSummary) -> None:
    status = str(summary.status)
    metrics.requests.labels(summary.endpoint, summary.service, summary.method, status).inc()
    metrics.latency.labels(summary.endpoint, summary.service, status).observe(
        summary.latency_ms / 1000
    )
    for rule_id, indicator in zip(summary.rule_ids, summary.indicators, strict=True):
        metrics.cards.labels(summary.service, indicator, rule_id).inc()
    if summary.endpoint == "/readyz" and summary.status == 503:
        metrics.database_errors.labels(check="readiness").inc()


class _AuditErrorSync:
    """Carries the audit store's count of failed database operations into the counter.

    The store counts per process; each worker adds its own increments to the
    (possibly multi-process) counter after every request, so nothing is counted twice.
    """

    def __init__(self, audit: HealthSource, metrics: Metrics) -> None:
        self._audit = audit
        self._metrics = metrics
        self._seen = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        try:
            total = self._audit.health().get("database_errors")
        except Exception:
            return
        if not isinstance(total, int):
            return
        with self._lock:
            delta, self._seen = total - self._seen, max(total, self._seen)
        if delta > 0:
            self._metrics.database_errors.labels(check="audit").inc(delta)


def install(app: Flask, settings: Settings, audit: HealthSource) -> MetricsEndpoint:
    """Request ids, the per-request JSON log line and ``GET /metrics``.

    Install before the other request hooks: the request id and clock then
    exist for every other hook, and the log line (an ``after_request`` that
    runs last) sees the final status and includes the audit write's time.
    """
    del settings  # the log level is set by configure_logging at process start
    endpoint = MetricsEndpoint(audit, multiprocess_dir())
    sync_audit_errors = _AuditErrorSync(audit, endpoint.metrics)

    @app.before_request
    def _begin() -> None:
        g.request_clock = time.perf_counter()
        current_request_id()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = current_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_clock")
        latency_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        summary = summarize(response, latency_ms, _known_services(app))
        _observe(endpoint.metrics, summary)
        sync_audit_errors()
        request_log.info("request", extra={"fields": summary.log_fields(request_id)})
        return response

    def metrics_view() -> Response:
        return Response(endpoint.render(), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule(METRICS_PATH, "metrics", metrics_view, methods=["GET"])
    return endpoint
