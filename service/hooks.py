"""The use case: a validated CDS Hooks request in, cards out.

Knows nothing of Flask or SQL. Its collaborators (the clinical knowledge and
the FHIR client) are passed in, so tests can hand it small fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from service.fhir import InvalidResource
from service.screening import Knowledge, Screening, screen

#: The prefetch key every red-flag service declares.
PREFETCH_KEY = "intake"


class DataUnavailable(Exception):
    """The QuestionnaireResponse cannot be had (HTTP 412)."""


class BadRequest(Exception):
    """The envelope is well-formed but does not fit this service (HTTP 400)."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


class QuestionnaireResponseInvalid(Exception):
    """The QR is not valid FHIR (HTTP 422)."""

    def __init__(self, message: str, expression: tuple[str, ...]) -> None:
        super().__init__(message)
        self.expression = expression


class FhirSource(Protocol):
    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]: ...

    def questionnaire(
        self, base: str, canonical: str, token: str | None
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str] | None
    usage_requirements: str
    #: context fields this service cannot work without
    required_context: tuple[str, ...]

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "usageRequirements": self.usage_requirements,
        }
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        return entry


def intake_query(canonical: str, patient: str = "{{context.patientId}}") -> str:
    return (
        f"QuestionnaireResponse?subject={patient}&questionnaire={canonical}"
        "&status=completed&_sort=-authored&_count=1"
    )


def build_catalogue(intake_canonical: str) -> tuple[CdsService, ...]:
    """The services; discovery and routing are both built from this."""
    prefetch = {PREFETCH_KEY: intake_query(intake_canonical)}
    usage = (
        "Needs the patient's exercise back-pain intake QuestionnaireResponse "
        f"({intake_canonical}) in prefetch 'intake', or read access to QuestionnaireResponse "
        "on fhirServer."
    )
    return (
        CdsService(
            id="backpain-redflags-patient-view",
            hook="patient-view",
            title="Exercise back pain: red-flag screen",
            description=(
                "Checks the patient's latest exercise back-pain intake for red flags "
                "(cauda equina, nerve root, neurological, systemic, fracture, persistence) "
                "and, when none fire, gives self-care and technique guidance."
            ),
            prefetch=prefetch,
            usage_requirements=usage,
            required_context=("userId", "patientId"),
        ),
        CdsService(
            id="backpain-redflags-encounter-start",
            hook="encounter-start",
            title="Exercise back pain: red-flag screen at encounter start",
            description=(
                "The same red-flag screen as the patient-view service, run when an "
                "encounter starts so urgent findings reach the clinician first."
            ),
            prefetch=prefetch,
            usage_requirements=usage,
            required_context=("userId", "patientId", "encounterId"),
        ),
        CdsService(
            id="backpain-redflags-intake",
            hook="questionnaire-inprogress",
            title="Exercise back pain: live red-flag check while the intake is filled in",
            description=(
                "For intake portals: called with context.questionnaireResponse (in-progress "
                "or completed), possibly on every answer; a critical card appears the moment "
                "a red flag is ticked."
            ),
            prefetch=None,
            usage_requirements=(
                "Send the QuestionnaireResponse being filled in as "
                "context.questionnaireResponse (draft hook questionnaire-inprogress)."
            ),
            required_context=("questionnaireResponse",),
        ),
    )


@dataclass(frozen=True)
class HookResult:
    response: dict[str, Any]
    screening: Screening
    qr_source: str


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


class HookHandler:
    def __init__(self, knowledge: Knowledge, fhir: FhirSource, *, max_items: int) -> None:
        self.knowledge = knowledge
        self.fhir = fhir
        self.max_items = max_items
        self.catalogue = build_catalogue(knowledge.library.intake_canonical)
        self.services = {service.id: service for service in self.catalogue}

    # -- locating the QuestionnaireResponse -------------------------------------------
    def locate(self, service: CdsService, request: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
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
            return self._from_prefetch(prefetch[PREFETCH_KEY]), "prefetch"

        server = request.get("fhirServer")
        patient = context.get("patientId")
        if server and isinstance(patient, str) and patient:
            auth = request.get("fhirAuthorization") or {}
            query = intake_query(self.knowledge.library.intake_canonical, patient)
            try:
                bundle = self.fhir.search(server, query, auth.get("access_token"))
            except RuntimeError as exc:
                raise DataUnavailable(
                    f"QuestionnaireResponse could not be read from fhirServer: {exc}"
                ) from exc
            found = newest_questionnaire_response(bundle)
            if found is None:
                raise DataUnavailable(
                    "fhirServer holds no completed intake QuestionnaireResponse for this patient"
                )
            return found, "fhirServer"

        raise DataUnavailable(
            f"No QuestionnaireResponse: give context.questionnaireResponse, prefetch "
            f"'{PREFETCH_KEY}', or fhirServer (with fhirAuthorization) and context.patientId"
        )

    def _from_prefetch(self, value: Any) -> dict[str, Any]:
        if value is None:
            raise DataUnavailable(
                f"prefetch '{PREFETCH_KEY}' is null: the client found no intake "
                "QuestionnaireResponse"
            )
        if not isinstance(value, dict):
            raise BadRequest(
                f"prefetch '{PREFETCH_KEY}' must be a FHIR resource", f"prefetch.{PREFETCH_KEY}"
            )
        kind = value.get("resourceType")
        if kind == "Bundle":
            found = newest_questionnaire_response(value)
            if found is None:
                raise DataUnavailable(
                    f"prefetch '{PREFETCH_KEY}' Bundle holds no QuestionnaireResponse"
                )
            return found
        return value  # a QR, or something else that parsing rejects with 422

    # -- the use case ------------------------------------------------------------------
    def handle(self, service: CdsService, request: Mapping[str, Any]) -> HookResult:
        if request["hook"] != service.hook:
            raise BadRequest(
                f"service {service.id} answers hook '{service.hook}', not '{request['hook']}'",
                "hook",
            )
        context = request["context"]
        missing = [name for name in service.required_context if context.get(name) in (None, "")]
        if missing:
            raise BadRequest(
                f"context lacks {', '.join(missing)} (required for hook {service.hook})",
                f"context.{missing[0]}",
            )
        qr, source = self.locate(service, request)
        self._check_subject(qr, context)
        server = request.get("fhirServer")
        token = (request.get("fhirAuthorization") or {}).get("access_token")

        def fetch(canonical: str) -> dict[str, Any] | None:
            return self.fhir.questionnaire(server, canonical, token) if server else None

        try:
            screening = screen(
                qr,
                self.knowledge,
                hook_instance=str(request["hookInstance"]),
                fetch_questionnaire=fetch,
                max_items=self.max_items,
            )
        except InvalidResource as exc:
            raise QuestionnaireResponseInvalid(exc.message, exc.expression) from exc
        return HookResult(
            response={"cards": list(screening.evaluation.cards)},
            screening=screening,
            qr_source=source,
        )

    @staticmethod
    def _check_subject(qr: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        """Refuse to screen one patient's answers in another patient's chart."""
        patient = context.get("patientId")
        subject = qr.get("subject")
        if not (isinstance(patient, str) and isinstance(subject, Mapping)):
            return
        reference = subject.get("reference")
        if not (isinstance(reference, str) and reference.startswith("Patient/")):
            return
        if reference.removeprefix("Patient/").split("/_history")[0] != patient:
            raise QuestionnaireResponseInvalid(
                "QuestionnaireResponse.subject is not context.patientId",
                ("QuestionnaireResponse.subject",),
            )
