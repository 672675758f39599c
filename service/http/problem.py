"""``Problem``: an error the client caused or must know about, with its HTTP status.

Raised anywhere in the request path; ``errors.py`` renders it as an OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Sequence

#: HTTP status -> FHIR IssueType code used when nothing more specific is known.
_DEFAULT_ISSUE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "not-found",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    500: "exception",
    503: "transient",
}


class Problem(Exception):
    """An error the client caused or must know about, with its HTTP status."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        expression: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or _DEFAULT_ISSUE.get(status, "processing")
        self.expression = tuple(expression)
        self.headers = headers or {}
