"""One request from start to end, in one place and in a fixed order:

1. start: the request's ``RequestTrace`` (one id, one clock), then the gates
   (client authentication) in the order given;
2. the view fills the trace;
3. end, once the response is final (status included, error handlers and every
   ``after_request`` hook done): the audit record, the metrics, one JSON log line.

The end runs in a WSGI middleware around the Flask app, so what is recorded is
what was sent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask

from service.http import trace as tracing
from service.http.auditing import build_record
from service.http.metrics import Metrics, service_label
from service.http.trace import REQUEST_ID_HEADER, RequestTrace

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from service.audit.records import AuditTrail

request_log = logging.getLogger("service.request")

Gate = Callable[[RequestTrace], None]
#: 401 no or bad token; 403 the portal's same-origin or CSRF check; 429 over the rate
REFUSED_UNAUTHENTICATED = frozenset({401, 403, 429})
_MAX_PATH = 256
_MAX_HOOK = 64


def log_fields(trace: RequestTrace, status: int, latency_ms: float, service: str) -> dict[str, Any]:
    """The request's log line: references only, never PHI or tokens."""
    screening = trace.result.screening if trace.result is not None else None
    findings = screening.evaluation.findings if screening is not None else ()
    return {
        "request_id": trace.request_id,
        "method": trace.method,
        "path": trace.path[:_MAX_PATH],
        "endpoint": trace.endpoint,
        "service": service or None,
        "status": status,
        "latency_ms": round(latency_ms, 2),
        "hook": trace.hook[:_MAX_HOOK] if trace.hook else None,
        "rules": [f.rule_id for f in findings],
        "indicators": [f.indicator for f in findings],
        "error": trace.problem.code if trace.problem is not None else None,
        "invocation_id": str(trace.id) if trace.is_audited else None,
        "client_iss": trace.client_iss,
    }


class RequestEnd:
    """WSGI middleware: sees the final status, then audits, counts and logs the request."""

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        audit: AuditTrail,
        metrics: Metrics,
        services: Mapping[str, Any],
    ) -> None:
        self._app = wsgi_app
        self._audit = audit
        self._metrics = metrics
        self._services = services

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sent: list[int] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            trace = environ.get(tracing.ENVIRON_KEY)
            if isinstance(trace, RequestTrace):
                headers.append((REQUEST_ID_HEADER, trace.request_id))
            sent.append(int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        body = self._app(environ, capture)
        trace = environ.get(tracing.ENVIRON_KEY)
        if isinstance(trace, RequestTrace) and sent:
            self.finish(trace, sent[-1])
        return body

    def finish(self, trace: RequestTrace, status: int) -> None:
        latency_ms = trace.elapsed_ms()
        if trace.is_audited:
            if is_refusal(trace, status):
                self._audit.record_refusal(trace.client_address, status, trace.started_at)
            else:
                self._audit.record_invocation(build_record(trace, status, latency_ms))
        service = service_label(trace, self._services)
        self._metrics.observe(trace, status, latency_ms, service)
        request_log.info(
            "request", extra={"fields": log_fields(trace, status, latency_ms, service)}
        )


def is_refusal(trace: RequestTrace, status: int) -> bool:
    """A call refused before anyone was authenticated (no token, a bad one, a forged
    portal page, a client over its rate): counted per client and window, not one row each,
    so strangers cannot make the audit trail (or, in an outage, the spool) grow per call."""
    return trace.client_iss is None and status in REFUSED_UNAUTHENTICATED


def install(
    app: Flask,
    *,
    audit: AuditTrail,
    metrics: Metrics,
    services: Mapping[str, Any],
    clock: Callable[[], datetime],
    new_id: Callable[[], uuid.UUID],
    gates: Sequence[Gate] = (),
) -> None:
    """Start every request with its trace and gates; end it in the WSGI middleware."""

    @app.before_request
    def _start() -> None:
        trace = tracing.begin(clock(), new_id())
        for gate in gates:
            gate(trace)

    app.wsgi_app = RequestEnd(app.wsgi_app, audit, metrics, services)  # type: ignore[method-assign]
