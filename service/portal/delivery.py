"""Sending a completed intake to the clinic's FHIR server (``PORTAL_FHIR_SERVER``).

A POST of the QuestionnaireResponse, with the clinic's bearer token, tried a
bounded number of times when the failure may pass (no answer, timeout, 408,
429, 5xx). The response carries an ``identifier`` minted by the page, sent as
``If-None-Exist`` (FHIR conditional create), so a retry after a lost answer
does not store the intake twice. What cannot be delivered raises
``DeliveryFailed``: the caller tells the patient and the audit keeps the reason.
Never logs the token or the response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
_FIRST_BACKOFF_SECONDS = 0.5


class DeliveryFailed(RuntimeError):
    """The clinic's FHIR server did not store the response; the message says why (no PHI)."""


def _conditional(resource: Mapping[str, Any]) -> str | None:
    identifier = resource.get("identifier")
    if not isinstance(identifier, Mapping):
        return None
    system, value = identifier.get("system"), identifier.get("value")
    if not (isinstance(system, str) and isinstance(value, str) and system and value):
        return None
    return f"identifier={system}|{value}"


def _stored_reference(response: requests.Response) -> str:
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    if location:
        path = urlsplit(location).path.split("/_history")[0].rstrip("/")
        parts = path.split("/")
        if len(parts) >= 2 and parts[-2] == "QuestionnaireResponse":
            return f"QuestionnaireResponse/{parts[-1]}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return f"QuestionnaireResponse/{body['id']}"
    return "QuestionnaireResponse"


class ClinicDelivery:
    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        attempts: int,
        timeout: float,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._attempts = max(1, attempts)
        self._timeout = timeout
        self._session = session or requests.Session()
        self._sleep = sleep

    def send(self, resource: Mapping[str, Any]) -> str:
        """POST ``resource``; returns ``QuestionnaireResponse/<id>`` as stored."""
        headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        condition = _conditional(resource)
        if condition:
            headers["If-None-Exist"] = condition
        url = f"{self.base_url}/QuestionnaireResponse"
        reason = "not tried"
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                self._sleep(_FIRST_BACKOFF_SECONDS * 2 ** (attempt - 2))
            try:
                response = self._session.post(
                    url, json=dict(resource), headers=headers, timeout=self._timeout
                )
            except requests.RequestException as exc:
                reason = f"unreachable ({type(exc).__name__})"
                log.warning("clinic FHIR server %s, try %d of %d", reason, attempt, self._attempts)
                continue
            if response.status_code in (200, 201):
                return _stored_reference(response)
            reason = f"answered HTTP {response.status_code}"
            log.warning("clinic FHIR server %s, try %d of %d", reason, attempt, self._attempts)
            if response.status_code not in _TRANSIENT:
                break
        raise DeliveryFailed(f"The clinic's FHIR server {reason}")
