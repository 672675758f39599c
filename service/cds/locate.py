"""Where a hook call's QuestionnaireResponse comes from, in order:

``context.questionnaireResponse`` | ``prefetch.intake`` (a QR, or a searchset
Bundle whose newest ``authored`` wins) | a search on ``fhirServer`` with the
bearer ``access_token`` | else ``DataUnavailable`` (412).

A search that worked and found no intake is not an error: the patient has no
intake on file (``None``; the hook answers with no cards). That is a
``prefetch.intake`` of ``null`` (CDS Hooks: the client had no data for the key),
a searchset Bundle without a QuestionnaireResponse, or such a Bundle from
``fhirServer``. Data that could not be had (no prefetch key and no fhirServer,
or a fhirServer that failed) is ``DataUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from service.cds.catalogue import PATIENT_PREFETCH_KEY, PREFETCH_KEY, intake_query
from service.cds.errors import BadRequest, DataUnavailable
from service.fhir.client import NO_USABLE_ANSWER


class FhirSource(Protocol):
    """The client's FHIR server (``service.fhir.client.FhirClient``)."""

    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]: ...

    def questionnaire(
        self, base: str, canonical: str, token: str | None
    ) -> dict[str, Any] | None: ...


class FhirServerGuard(Protocol):
    """Which fhirServer may be called for which client (``service.auth.FhirServerPolicy``)."""

    def allows(self, iss: str | None, url: str) -> bool: ...


#: The 412 text when a request names a fhirServer not allowed for its client: it says
#: nothing of the server (never contacted) and nothing a prober could learn from.
NOT_ALLOWED = "fhirServer is not allowed for this client"

_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _authored(resource: Mapping[str, Any]) -> datetime:
    """``authored`` as an aware instant; partial or missing dates sort earliest-first."""
    value = resource.get("authored")
    if not isinstance(value, str):
        return _EARLIEST
    text = value + "-01" * max(0, 2 - value.count("-")) if "T" not in value else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return _EARLIEST
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def newest_questionnaire_response(bundle: Mapping[str, Any]) -> dict[str, Any] | None:
    """The QR with the newest ``authored`` in a searchset Bundle."""
    found: list[dict[str, Any]] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "QuestionnaireResponse":
            found.append(resource)
    return max(found, key=_authored) if found else None


def broken_entries(bundle: Mapping[str, Any]) -> list[int]:
    """Positions of ``entry`` items that are not ``{"resource": {...}}`` (all, if not a list)."""
    entries = bundle.get("entry")
    if entries is None:
        return []
    if not isinstance(entries, list):
        return [0]
    return [
        index
        for index, entry in enumerate(entries)
        if not (isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping))
    ]


def locate(
    request: Mapping[str, Any],
    fhir: FhirSource,
    intake_canonical: str,
    *,
    server_allowed: bool,
) -> tuple[dict[str, Any] | None, str]:
    """The QR JSON (None: no intake on file) and where it came from:
    context | prefetch | fhirServer.

    ``server_allowed``: whether the request's fhirServer may be called for this client;
    when it may not, the server is never contacted and the answer is 412.
    """
    context = request["context"]
    in_context = context.get("questionnaireResponse")
    if in_context is not None:
        if not isinstance(in_context, dict):
            raise BadRequest(
                "context.questionnaireResponse must be a FHIR resource (JSON object)",
                "context.questionnaireResponse",
            )
        return in_context, "context"

    prefetch = request.get("prefetch") or {}
    if PREFETCH_KEY in prefetch:
        return _from_prefetch(prefetch[PREFETCH_KEY]), "prefetch"

    server = request.get("fhirServer")
    patient = context.get("patientId")
    if server and isinstance(patient, str) and patient:
        if not server_allowed:
            raise DataUnavailable(NOT_ALLOWED)
        token = (request.get("fhirAuthorization") or {}).get("access_token")
        try:
            bundle = fhir.search(server, intake_query(intake_canonical, patient), token)
        except RuntimeError as exc:
            raise DataUnavailable(
                f"QuestionnaireResponse could not be read from fhirServer: {exc}"
            ) from exc
        if broken_entries(bundle):
            raise DataUnavailable(  # the remote's details are logged, never echoed
                f"QuestionnaireResponse could not be read from fhirServer: {NO_USABLE_ANSWER}"
            )
        return newest_questionnaire_response(bundle), "fhirServer"

    raise DataUnavailable(
        f"No QuestionnaireResponse: give context.questionnaireResponse, prefetch "
        f"'{PREFETCH_KEY}', or fhirServer (with fhirAuthorization) and context.patientId"
    )


def _from_prefetch(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None  # the client searched and found nothing
    if not isinstance(value, dict):
        raise BadRequest(
            f"prefetch '{PREFETCH_KEY}' must be a FHIR resource", f"prefetch.{PREFETCH_KEY}"
        )
    if value.get("resourceType") == "Bundle":
        broken = broken_entries(value)
        if broken:
            raise BadRequest(
                f"prefetch '{PREFETCH_KEY}' Bundle entry {broken[0]} is not "
                '{"resource": {...}}',
                f"prefetch.{PREFETCH_KEY}",
            )
        return newest_questionnaire_response(value)
    return value  # a QR, or something else that parsing rejects with 422


def prefetched_patient(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Patient in ``prefetch.patient`` when it is this call's patient; else None.

    Optional data: anything else (absent, null, an OperationOutcome, another patient)
    is ignored rather than refused, and the form's own age question still counts.
    """
    value = (request.get("prefetch") or {}).get(PATIENT_PREFETCH_KEY)
    if not isinstance(value, dict) or value.get("resourceType") != "Patient":
        return None
    patient = request["context"].get("patientId")
    if value.get("id") is not None and value.get("id") != patient:
        return None
    return value
