"""One request from start to end, in one place and in a fixed order:

1. start: the request's ``RequestTrace`` (one id, one clock), then the gates
   (client authentication) in the order given;
2. the view fills the trace;
3. end, once the response is final (status included, error handlers and every
   ``after_request`` hook done): the audit record (with the settlement of the call's
   ``jti`` when the gate left it open), the metrics, one JSON log line.

The end runs in a WSGI middleware around the Flask app that holds the response until
then, so what is recorded is what is sent.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.wrappers import Response

from service.audit.records import AuditUnavailable
from service.http import trace as tracing
from service.http.auditing import build_record
from service.http.errors import Problem, operation_outcome, unauthorized
from service.http.metrics import Metrics, service_label
from service.http.security import REPLAY_UNAVAILABLE
from service.http.trace import REQUEST_ID_HEADER, RequestTrace

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from service.audit.records import AuditTrail, ClaimingAuditTrail, JtiClaim

log = logging.getLogger(__name__)
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
    """WSGI middleware: holds the app's response until its status is final, then audits,
    counts and logs the request, and only then lets the response go.

    A hook call whose ``jti`` claim is still open (``security.py``) settles it in the same
    statement as its audit record; when the ``jti`` turns out to be a replay, the held
    response is dropped and a 401 goes instead (no card ever leaves for a replayed token).
    """

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        audit: AuditTrail,
        metrics: Metrics,
        services: Mapping[str, Any],
        claims: ClaimingAuditTrail | None = None,
    ) -> None:
        self._app = wsgi_app
        self._audit = audit
        self._metrics = metrics
        self._services = services
        self._claims = claims

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        held: list[tuple[str, list[tuple[str, str]], Any]] = []
        released = False

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if released:  # an app starting its response late: nothing to hold any more
                return start_response(status, headers, exc_info)
            held.append((status, headers, exc_info))
            return _no_write

        body = self._app(environ, hold)
        released = True
        if not held:
            return body
        status, headers, exc_info = held[-1]
        trace = environ.get(tracing.ENVIRON_KEY)
        if isinstance(trace, RequestTrace):
            headers.append((REQUEST_ID_HEADER, trace.request_id))
            instead = self.finish(trace, int(status.split(" ", 1)[0]))
            if instead is not None:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                return problem_response(instead, headers)(environ, start_response)
        start_response(status, headers, exc_info)
        return body

    def finish(self, trace: RequestTrace, status: int) -> Problem | None:
        """Audit, count and log the request; the problem to answer instead, if any."""
        latency_ms = trace.elapsed_ms()
        instead, claim = None, trace.jti_claim
        if claim is not None and self._claims is not None:
            instead = self._settle(self._claims, claim, trace, status, latency_ms)
            status = instead.status if instead is not None else status
        elif trace.is_audited:
            if is_refusal(trace, status):
                self._audit.record_refusal(trace.client_address, status, trace.started_at)
            else:
                self._audit.record_invocation(build_record(trace, status, latency_ms))
        service = service_label(trace, self._services)
        self._metrics.observe(trace, status, latency_ms, service)
        request_log.info(
            "request", extra={"fields": log_fields(trace, status, latency_ms, service)}
        )
        return instead

    def _settle(
        self,
        claims: ClaimingAuditTrail,
        claim: JtiClaim,
        trace: RequestTrace,
        status: int,
        latency_ms: float,
    ) -> Problem | None:
        """Settle the call's jti with its record: None when accepted, else what to send."""
        trace.jti_claim = None
        try:
            if claims.record_claimed(build_record(trace, status, latency_ms), claim):
                return None
            why = f"jti replayed for {claim.iss!r}"
        except ValueError as exc:  # the store refused the value itself
            why = f"jti cannot be stored ({exc})"
        except AuditUnavailable as exc:  # fail-closed and PostgreSQL cannot be asked
            log.warning("replay store unavailable: %s", exc)
            problem = Problem(503, REPLAY_UNAVAILABLE)
            trace.unauthenticate(problem)
            self._audit.record_invocation(build_record(trace, problem.status, latency_ms))
            return problem
        log.info("401 %s %s: %s (found with the audit write)", trace.method, trace.path, why)
        problem = unauthorized()
        trace.unauthenticate(problem)
        self._audit.record_refusal(trace.client_address, problem.status, trace.started_at)
        return problem


def _no_write(_data: bytes) -> None:
    raise RuntimeError("write() is not supported: return the body from the application")


#: headers of the held response that a replacing error response keeps
_KEPT_HEADERS = frozenset({REQUEST_ID_HEADER.lower(), "vary"})


def problem_response(problem: Problem, held: Iterable[tuple[str, str]]) -> Response:
    """The OperationOutcome sent instead of a held response (outside any request context),
    as ``errors.error_response`` renders it; CORS and request id headers kept."""
    outcome = operation_outcome(problem.code, problem.diagnostics, problem.expression)
    response = Response(
        json.dumps(outcome, separators=(",", ":")) + "\n",
        status=problem.status,
        mimetype="application/fhir+json",
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    for name, value in held:
        lowered = name.lower()
        if lowered in _KEPT_HEADERS or lowered.startswith("access-control-"):
            response.headers.add(name, value)
    return response


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
    claims: ClaimingAuditTrail | None = None,
) -> None:
    """Start every request with its trace and gates; end it in the WSGI middleware.

    ``claims``: the audit trail that settles the jti claims the gates leave open.
    """

    @app.before_request
    def _start() -> None:
        trace = tracing.begin(clock(), new_id())
        for gate in gates:
            gate(trace)

    app.wsgi_app = RequestEnd(app.wsgi_app, audit, metrics, services, claims)  # type: ignore[method-assign]
