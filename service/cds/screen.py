"""The screen: QuestionnaireResponse JSON in, findings and cards out; no HTTP, no SQL.

QR JSON -> parse (fhir.resources R4B) -> resolve its Questionnaire -> facts ->
pure engine. A ``Screener`` owns its compiled validation; the bundled forms' indexes
are built once, with the knowledge. Validated QRs are not kept: each kept model
lengthened every garbage collection of the worker (pauses of tens of milliseconds
with 256 kept, bench/README.md change 9), to save the ~0.1 ms its validation costs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service import fhir
from service.engine import CLINICIAN, Evaluation, evaluate
from service.fhir import conformance
from service.knowledge import Knowledge


@dataclass(frozen=True)
class Screening:
    evaluation: Evaluation
    qr_id: str | None
    qr_version: str | None
    #: sha256 of the QR's canonical JSON (sort_keys, compact separators, UTF-8)
    qr_sha256: str
    #: canonical|version of the Questionnaire used, else the QR's reference
    questionnaire: str | None
    #: contained | bundled | fhirServer | unresolved
    questionnaire_resolution: str
    subject: str | None


def birth_date_of(patient: Mapping[str, Any] | None) -> str | None:
    """``Patient.birthDate`` when ``patient`` is a Patient resource with one, else None."""
    if not isinstance(patient, Mapping) or patient.get("resourceType") != "Patient":
        return None
    value = patient.get("birthDate")
    return value if isinstance(value, str) and value else None


def canonical_sha256(resource: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (``resource`` comes from ``json.loads``: it cannot hold
    a cycle, so the encoder's cycle check, a fifth of its time, is skipped)."""
    text = json.dumps(
        resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Screener:
    """Screens QRs against one loaded ``Knowledge``; safe to share between threads."""

    def __init__(
        self,
        knowledge: Knowledge,
        *,
        max_items: int = 2000,
        fast_validation: bool = True,
        public_url: str = "",
    ) -> None:
        self.knowledge = knowledge
        self.max_items = max_items
        #: the service's public base URL: cards' source.url is <public_url>/rules/<id>
        self.public_url = public_url
        #: QR validation: the fast path, compiled once here rather than on a first call
        self.parser = fhir.ResponseParser(fast=fast_validation)

    def screen(
        self,
        qr: Mapping[str, Any],
        *,
        hook_instance: str,
        fetch_questionnaire: Callable[[str], dict[str, Any] | None] | None = None,
        voice: str = CLINICIAN,
        strict: bool = False,
        patient: Mapping[str, Any] | None = None,
    ) -> Screening:
        """Raises ``fhir.InvalidResource`` when ``qr`` is not a valid R4 QuestionnaireResponse,
        or breaks its Questionnaire's constraints (``conformance``; ``strict``: the portal's).

        ``fetch_questionnaire(canonical)`` returns the Questionnaire JSON or None; it is
        only called when the form is neither contained nor bundled. ``voice``: the
        cards' words for a clinician (EHR hooks) or a patient (intake hook, portal).
        ``patient`` is the Patient the EHR prefetched (its ``birthDate`` gives the age).
        """
        fhir.count_items(qr, self.max_items)
        sha256 = canonical_sha256(qr)
        parsed = self.parser.parse(qr)
        library = self.knowledge.library
        questionnaire, resolution = fhir.resolve_questionnaire(parsed, library, fetch_questionnaire)
        form = self._index(questionnaire) if questionnaire is not None else None
        conformance.require(parsed, questionnaire, form, strict=strict)
        facts = fhir.extract_facts(
            parsed,
            form,
            self.knowledge.vocabulary,
            reader=self.knowledge.reader,
            birth_date=birth_date_of(patient),
        )
        evaluation = evaluate(
            self.knowledge.ruleset,
            facts,
            hook_instance=hook_instance,
            voice=voice,
            base_url=self.public_url,
        )
        used = parsed.questionnaire
        if questionnaire is not None and questionnaire.url:
            version = f"|{questionnaire.version}" if questionnaire.version else ""
            used = questionnaire.url + version
        return Screening(
            evaluation=evaluation,
            qr_id=parsed.id,
            qr_version=parsed.meta.versionId if parsed.meta is not None else None,
            qr_sha256=sha256,
            questionnaire=used,
            questionnaire_resolution=resolution,
            subject=facts.subject,
        )

    def _index(self, questionnaire: fhir.Questionnaire) -> fhir.FormIndex:
        """The bundled form's prebuilt index, else one built for this call's form."""
        bundled = self.knowledge.library.index_of(questionnaire)
        if bundled is not None:
            return bundled
        return fhir.FormIndex.build(questionnaire, self.knowledge.vocabulary)


def screen(
    qr: Mapping[str, Any],
    knowledge: Knowledge,
    *,
    hook_instance: str,
    fetch_questionnaire: Callable[[str], dict[str, Any] | None] | None = None,
    max_items: int = 2000,
    voice: str = CLINICIAN,
    public_url: str = "",
    patient: Mapping[str, Any] | None = None,
) -> Screening:
    """One screen with nothing kept: no caches, no compiled validation (the CLI, tests,
    one-off callers; fhir.resources decides, with the same verdict as the fast path)."""
    screener = Screener(
        knowledge,
        max_items=max_items,
        public_url=public_url,
        fast_validation=False,
    )
    return screener.screen(
        qr,
        hook_instance=hook_instance,
        fetch_questionnaire=fetch_questionnaire,
        voice=voice,
        patient=patient,
    )
