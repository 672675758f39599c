"""Which Questionnaire a QuestionnaireResponse answers: contained, bundled, fetched, or none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from service.fhir.parse import InvalidResource, parse_questionnaire

#: Fetch a Questionnaire's JSON by canonical (``url`` or ``url|version``), or None.
QuestionnaireFetch = Callable[[str], dict[str, Any] | None]


class BundledForms(Protocol):
    """The service's own Questionnaires (``service.knowledge.QuestionnaireLibrary``)."""

    def get(self, canonical: str) -> Questionnaire | None: ...


def resolve_questionnaire(
    qr: QuestionnaireResponse,
    bundled: BundledForms,
    fetch: QuestionnaireFetch | None = None,
) -> tuple[Questionnaire | None, str]:
    """contained ("#id") -> bundled (canonical|version) -> fetch(canonical) -> unresolved."""
    canonical = qr.questionnaire
    if not canonical:
        return None, "unresolved"
    if canonical.startswith("#"):
        for resource in qr.contained or []:
            if isinstance(resource, Questionnaire) and resource.id == canonical[1:]:
                return resource, "contained"
        return None, "unresolved"
    for resource in qr.contained or []:
        if isinstance(resource, Questionnaire) and _matches(resource, canonical):
            return resource, "contained"
    found = bundled.get(canonical)
    if found is not None:
        return found, "bundled"
    if fetch is not None:
        raw = fetch(canonical)
        if raw is not None:
            try:
                return parse_questionnaire(raw), "fhirServer"
            except InvalidResource:
                return None, "unresolved"
    return None, "unresolved"


def _matches(q: Questionnaire, canonical: str) -> bool:
    url, _, version = canonical.partition("|")
    return q.url == url and (not version or q.version == version)
