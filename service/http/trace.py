"""One typed record of a request, created once at its start, filled by the layers it
passes through, and read once at its end to write the audit record, the log line and
the metrics. References only: never a token, never answers.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, request

if TYPE_CHECKING:
    from service.audit.records import JtiClaim
    from service.cds.hook import HookResult
    from service.http.problem import Problem

REQUEST_ID_HEADER = "X-Request-ID"
#: where the trace travels with the WSGI environ, so the end of the request can read it
ENVIRON_KEY = "backpain_cds.trace"
#: Paths whose POSTs are audited: CDS Hooks calls and the intake portal's screens.
AUDITED_PREFIXES = ("/cds-services/", "/intake/")
#: The audit's service id of every portal call.
PORTAL_SERVICE_ID = "intake-portal"
#: A caller's request id is kept when it is 1-128 printable ASCII characters.
_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")


def accepted_request_id(header: str | None) -> str | None:
    """The caller's ``X-Request-ID`` if it is safe to echo and log, else None."""
    if header is None:
        return None
    value = header.strip()
    return value if _REQUEST_ID.fullmatch(value) else None


@dataclass
class RequestTrace:
    """What one request did. ``id`` is the audit invocation id."""

    id: uuid.UUID
    #: the caller's X-Request-ID when acceptable, else ``str(id)``
    request_id: str
    started_at: datetime
    #: ``time.perf_counter()`` at the start (latency)
    started: float
    method: str
    path: str
    #: the matched route ("/cds-services/<service_id>"), or "unmatched"
    endpoint: str
    view_args: Mapping[str, Any] = field(default_factory=dict)
    #: the peer's address (the key refused calls are counted under)
    client_address: str = "unknown"
    hook: str | None = None
    hook_instance: str | None = None
    patient_ref: str | None = None
    encounter_ref: str | None = None
    client_iss: str | None = None
    tenant: str | None = None
    result: HookResult | None = None
    problem: Problem | None = None
    #: the token's ``jti``, claimed in the pod ledger, not yet settled in PostgreSQL: the
    #: end of the request settles it with the audit record, before the response leaves
    jti_claim: JtiClaim | None = None

    @property
    def service_id(self) -> str | None:
        value = self.view_args.get("service_id")
        return value if isinstance(value, str) else None

    @property
    def is_audited(self) -> bool:
        """Every POST under /cds-services/ or /intake/ leaves an audit record (errors too)."""
        return self.method == "POST" and self.path.startswith(AUDITED_PREFIXES)

    @property
    def audit_service_id(self) -> str | None:
        """The service the audit names: /cds-services/{id}, or the portal."""
        if self.path.startswith("/intake/"):
            return PORTAL_SERVICE_ID
        parts = self.path.split("/")
        return parts[2][:200] if len(parts) > 2 and parts[2] else None

    def unauthenticate(self, problem: Problem) -> None:
        """The call is refused after all (its token was a replay): nothing of it was sent."""
        self.client_iss = None
        self.tenant = None
        self.result = None
        self.problem = problem
        self.jti_claim = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def note_envelope(self, body: Mapping[str, Any]) -> None:
        """Keep what the audit should know of a hook request, even if validation fails later."""
        hook = body.get("hook")
        self.hook = hook if isinstance(hook, str) else None
        instance = body.get("hookInstance")
        self.hook_instance = instance if isinstance(instance, str) else None
        context = body.get("context")
        if isinstance(context, Mapping):
            patient, encounter = context.get("patientId"), context.get("encounterId")
            if isinstance(patient, str) and patient:
                self.patient_ref = f"Patient/{patient}"
            if isinstance(encounter, str) and encounter:
                self.encounter_ref = f"Encounter/{encounter}"


def begin(started_at: datetime, new_id: uuid.UUID) -> RequestTrace:
    """Create this request's trace (call once, first thing)."""
    rule = request.url_rule
    trace = RequestTrace(
        id=new_id,
        request_id=accepted_request_id(request.headers.get(REQUEST_ID_HEADER)) or str(new_id),
        started_at=started_at,
        started=time.perf_counter(),
        method=request.method,
        path=request.path,
        endpoint=rule.rule if rule is not None else "unmatched",
        view_args=dict(request.view_args or {}),
        client_address=(request.remote_addr or "unknown")[:64],
    )
    g.trace = trace
    request.environ[ENVIRON_KEY] = trace
    return trace


def current() -> RequestTrace:
    trace: RequestTrace = g.trace
    return trace


def current_or_none() -> RequestTrace | None:
    if not has_request_context():
        return None
    found = g.get("trace")
    return found if isinstance(found, RequestTrace) else None
