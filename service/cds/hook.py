"""The hook call use case: a validated CDS Hooks request in, cards out.

Knows nothing of Flask or SQL. Its collaborators (the screener and the client's
FHIR server) are passed in, so tests hand it small fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.cds.catalogue import CdsService, build_catalogue
from service.cds.errors import BadRequest, QuestionnaireResponseInvalid
from service.cds.locate import FhirServerGuard, FhirSource, locate, prefetched_patient
from service.cds.screen import Screener, Screening
from service.engine import CLINICIAN, PATIENT
from service.fhir import InvalidResource

#: Who reads the cards of each hook (CLINICAL.md principle 9): the intake hook serves
#: the patient filling in the form; every EHR hook a clinician.
PATIENT_HOOKS = frozenset({"questionnaire-inprogress"})


def voice_of(hook: str) -> str:
    return PATIENT if hook in PATIENT_HOOKS else CLINICIAN


@dataclass(frozen=True)
class HookResult:
    response: dict[str, Any]
    #: None when the patient has no intake on file (nothing was screened, no cards)
    screening: Screening | None
    qr_source: str


class HookHandler:
    def __init__(self, screener: Screener, fhir: FhirSource, guard: FhirServerGuard) -> None:
        self.screener = screener
        self.knowledge = screener.knowledge
        self.fhir = fhir
        self.guard = guard
        self.catalogue = build_catalogue(self.knowledge.library.intake_canonical)
        self.services = {service.id: service for service in self.catalogue}

    def handle(
        self,
        service: CdsService,
        request: Mapping[str, Any],
        client_iss: str | None = None,
        *,
        strict: bool = False,
    ) -> HookResult:
        """``client_iss``: the verified caller (None with auth off), for the fhirServer guard.
        ``strict``: the portal's conformance (``service.fhir.conformance``)."""
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
        server: str | None = request.get("fhirServer")
        allowed = server is not None and self.guard.allows(client_iss, server)
        canonical = self.knowledge.library.intake_canonical
        qr, source = locate(request, self.fhir, canonical, server_allowed=allowed)
        if qr is None:  # a search that worked and found no intake: nothing to say
            return HookResult(response={"cards": []}, screening=None, qr_source=source)
        check_subject(qr, context)
        token = (request.get("fhirAuthorization") or {}).get("access_token")

        def fetch(canonical: str) -> dict[str, Any] | None:
            if server is None or not allowed:
                return None
            return self.fhir.questionnaire(server, canonical, token)

        try:
            screening = self.screener.screen(
                qr,
                hook_instance=str(request["hookInstance"]),
                fetch_questionnaire=fetch,
                voice=voice_of(service.hook),
                strict=strict,
                patient=prefetched_patient(request),
            )
        except InvalidResource as exc:
            raise QuestionnaireResponseInvalid(exc.message, exc.expression) from exc
        return HookResult(
            response={"cards": list(screening.evaluation.cards)},
            screening=screening,
            qr_source=source,
        )


def check_subject(qr: Mapping[str, Any], context: Mapping[str, Any]) -> None:
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
