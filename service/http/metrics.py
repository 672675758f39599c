"""Prometheus metrics: counters and histograms per request, and ``GET /metrics``.

Gunicorn runs several worker processes. When ``PROMETHEUS_MULTIPROC_DIR`` names a
writable directory (prometheus-client's own switch, read by the library at import;
the service reads it through ``Settings``), the counters live in memory-mapped files
there and ``/metrics`` aggregates every worker; ``deploy/gunicorn.conf.py`` empties the
directory at start and marks dead workers. Without it, each app has its own registry
(so ``create_app`` may run many times in one process, as the tests do).

Labels are bounded on purpose: a label per arbitrary path segment would let any
client grow the metrics without limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from service.audit.state import AuditHooks
from service.http.trace import RequestTrace

METRICS_PATH = "/metrics"
#: prometheus-client's switch for multi-process (gunicorn) mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets, seconds: the CDS Hooks target is ~500 ms.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


class HealthSource(Protocol):
    """The part of the audit trail the metrics read (``AuditTrail.health``)."""

    def health(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Metrics:
    """The service's own counters and histograms."""

    requests: Counter
    latency: Histogram
    cards: Counter
    database_errors: Counter
    dead_letters: Counter
    records_lost: Counter
    records_dropped: Counter

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
            dead_letters=Counter(
                "backpain_cds_audit_dead_letters",
                "Audit records the database refused for good, kept in the dead-letter file.",
                ["kind"],
                registry=registry,
            ),
            records_lost=Counter(
                "backpain_cds_audit_records_lost",
                "Audit records neither the database, the spool nor the dead letters could keep.",
                ["kind"],
                registry=registry,
            ),
            records_dropped=Counter(
                "backpain_cds_audit_records_dropped",
                "Audit records dropped while the database was down and the spool was full.",
                ["kind"],
                registry=registry,
            ),
        )

    def audit_hooks(self) -> AuditHooks:
        """What the audit adapter reports as it happens, counted here (nothing polls)."""
        return AuditHooks(
            on_database_error=lambda _operation: self.database_errors.labels(check="audit").inc(),
            on_dead_letter=lambda kind: self.dead_letters.labels(kind=kind).inc(),
            on_record_lost=lambda kind: self.records_lost.labels(kind=kind).inc(),
            on_spool_full=lambda kind: self.records_dropped.labels(kind=kind).inc(),
        )

    def observe(self, trace: RequestTrace, status: int, latency_ms: float, service: str) -> None:
        code = str(status)
        self.requests.labels(trace.endpoint, service, trace.method, code).inc()
        self.latency.labels(trace.endpoint, service, code).observe(latency_ms / 1000)
        if trace.result is not None and trace.result.screening is not None:
            for finding in trace.result.screening.evaluation.findings:
                self.cards.labels(service, finding.indicator, finding.rule_id).inc()
        if trace.endpoint == "/readyz" and status == 503:
            self.database_errors.labels(check="readiness").inc()


def service_label(trace: RequestTrace, known: Mapping[str, Any]) -> str:
    """The service id when known; "unknown" for other ids; "" off /cds-services/{id}."""
    service_id = trace.service_id
    if service_id is not None and service_id in known:
        return service_id
    return "unknown" if "service_id" in trace.view_args else ""


def database_up(health: Mapping[str, Any]) -> bool:
    return health.get("database") == "up"


class MetricSource(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Scrape(Collector):
    """One scrape: the base metrics plus the audit health read right now."""

    def __init__(self, base: MetricSource, health: Mapping[str, Any]) -> None:
        self._base = base
        self._health = health

    def collect(self) -> Iterator[Metric]:
        yield from self._base.collect()
        depth = self._health.get("spool_depth")
        yield GaugeMetricFamily(
            "backpain_cds_audit_spool_depth",
            "Audit records waiting in the local spool for the database.",
            value=float(depth) if isinstance(depth, int | float) else 0.0,
        )
        yield GaugeMetricFamily(
            "backpain_cds_database_up",
            "1 when the audit database answered the last health check, else 0.",
            value=1.0 if database_up(self._health) else 0.0,
        )


class MetricsEndpoint:
    """Owns the registry (or the multi-process files) of one app; ``bind`` names the audit
    trail whose health each scrape reads (the trail is built with these metrics' hooks)."""

    def __init__(self, multiproc_dir: str | None) -> None:
        self._audit: HealthSource | None = None
        self._multiproc = multiproc_dir
        if multiproc_dir:
            # Values go to the mmap files; collection reads every worker's files.
            self._registry: CollectorRegistry | None = None
            self.metrics = Metrics.create(None)
        else:
            self._registry = CollectorRegistry()
            self.metrics = Metrics.create(self._registry)
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)

    def bind(self, audit: HealthSource) -> None:
        self._audit = audit

    def _health(self) -> Mapping[str, Any]:
        if self._audit is None:
            return {"database": "down", "spool_depth": 0}
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
        registry.register(_Scrape(self._base(), health))
        return _generate_latest(registry)

    def _base(self) -> MetricSource:
        if self._registry is not None:
            return self._registry
        collector: MetricSource = MultiProcessCollector(None, path=self._multiproc)  # type: ignore[no-untyped-call]
        return collector

    def view(self) -> Response:
        return Response(self.render(), content_type=CONTENT_TYPE)
