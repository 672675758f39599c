"""One way to answer with an error: a FHIR OperationOutcome, never a trace.

``Problem`` is raised anywhere in the request path; the handlers registered by
``register_error_handlers`` turn it (and every other exception) into JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from service.http.problem import Problem
from service.http.trace import current_or_none

__all__ = [
    "Problem",
    "error_response",
    "operation_outcome",
    "register_error_handlers",
    "unauthorized",
]

log = logging.getLogger(__name__)


def operation_outcome(
    code: str, diagnostics: str, expression: Sequence[str] = (), severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = list(expression)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_response(problem: Problem) -> Response:
    """The single place that renders an error body."""
    trace = current_or_none()
    if trace is not None:
        trace.problem = problem  # read by the audit and the request log
    response = jsonify(operation_outcome(problem.code, problem.diagnostics, problem.expression))
    response.status_code = problem.status
    response.mimetype = "application/fhir+json"
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def unauthorized() -> Problem:
    """401 with no detail about what was wrong (CDS Hooks security)."""
    return Problem(
        401, "Unauthorized", code="login", headers={"WWW-Authenticate": 'Bearer realm="cds"'}
    )


def _http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    messages = {
        404: "No such resource",
        405: "Method not allowed",
        413: "Request body too large",
        415: "Content-Type must be application/json",
    }
    return error_response(Problem(status, messages.get(status, exc.name)))


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error while serving a request")
    return error_response(Problem(500, "Internal error; the call was recorded"))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, error_response)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)
