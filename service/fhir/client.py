"""Outbound calls to the CDS client's FHIR server (the ``fhirServer`` path).

The bearer ``access_token`` is used for the call and forgotten: never logged,
never stored. Each call has one deadline (connect and every read together,
``FHIR_TIMEOUT_SECONDS``) and its answer a size cap (``FHIR_MAX_RESPONSE_BYTES``),
see ``service.outbound``. What went wrong is logged at INFO (server and resource type, never
the query or the token); the error itself says only that there was no usable
answer, so a 412 never echoes what a remote server said or whether it listens.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

from service.outbound import BoundedGet, OutboundError

log = logging.getLogger(__name__)

#: FHIR_MAX_RESPONSE_BYTES' default: an intake search answer is a few kB.
DEFAULT_MAX_RESPONSE_BYTES = 4_000_000

#: The one message a caller (and so a 412) gets, whatever went wrong.
NO_USABLE_ANSWER = "fhirServer gave no usable answer"


class FhirServerError(RuntimeError):
    """The FHIR server could not be reached or gave an unusable answer."""

    def __init__(self) -> None:
        super().__init__(NO_USABLE_ANSWER)


def _server(base: str) -> str:
    """scheme://host[:port]/path of a base URL: no user, password or query reaches a log."""
    try:
        parts = urlsplit(base)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<not a URL>"
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"[:300]


def _failed(base: str, resource_type: str, detail: str) -> FhirServerError:
    log.info("fhirServer %s (%s) failed: %s", _server(base), resource_type, detail)
    return FhirServerError()


class FhirClient:
    """Reads from a client's FHIR server: one deadline per call, answers capped in size."""

    def __init__(self, *, timeout: float, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._get_bytes = BoundedGet(deadline=timeout, max_bytes=max_bytes)

    def _get(self, base: str, path: str, params: dict[str, str], token: str | None) -> Any:
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{base.rstrip('/')}/{path}?{urlencode(params)}"
        try:
            raw = self._get_bytes(url, headers)
        except OutboundError as exc:
            raise _failed(base, path, str(exc)) from None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise _failed(base, path, "answered with a body that is not JSON") from None

    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]:
        """GET ``base/<query>`` where query is ``Type?a=b&c=d``; returns a Bundle."""
        resource_type, _, raw = query.partition("?")
        params = dict(part.split("=", 1) for part in raw.split("&") if "=" in part)
        body = self._get(base, resource_type, params, token)
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise _failed(base, resource_type, "search did not return a Bundle")
        return body

    def questionnaire(self, base: str, canonical: str, token: str | None) -> dict[str, Any] | None:
        """The Questionnaire with this canonical (``url`` or ``url|version``), or None."""
        url, _, version = canonical.partition("|")
        params = {"url": url}
        if version:
            params["version"] = version
        try:
            bundle = self._get(base, "Questionnaire", params, token)
        except FhirServerError:
            return None
        entries = bundle.get("entry") if isinstance(bundle, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Questionnaire":
                return resource
        return None
