"""The CDS services this product offers: discovery and routing are both built from this data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The prefetch key every red-flag service declares.
PREFETCH_KEY = "intake"
#: The Patient (its birthDate gives the age when the form does not ask it).
PATIENT_PREFETCH_KEY = "patient"
PATIENT_QUERY = "Patient/{{context.patientId}}"


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
    """The FHIR search for the patient's newest completed intake (prefetch and fhirServer).

    ``patient`` is QuestionnaireResponse's search parameter for "subject, when a Patient";
    a bare id in ``subject`` (a reference to any resource type) may be refused or misread.
    """
    return (
        f"QuestionnaireResponse?patient={patient}&questionnaire={canonical}"
        "&status=completed&_sort=-authored&_count=1"
    )


def build_catalogue(intake_canonical: str) -> tuple[CdsService, ...]:
    prefetch = {PREFETCH_KEY: intake_query(intake_canonical), PATIENT_PREFETCH_KEY: PATIENT_QUERY}
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
