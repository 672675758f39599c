"""The screening use case without HTTP: QuestionnaireResponse JSON in, cards out.

QR dict -> parse (fhir.resources R4B) -> resolve its Questionnaire -> facts ->
pure engine. ``Knowledge`` (rules, questionnaires, terminology) is loaded and
validated once, at start-up.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import fhir
from service.engine import Evaluation, RuleSet, evaluate
from service.rules import load_ruleset
from service.terminology import LOCAL_SYSTEM, SNOMED, Terminology


class KnowledgeError(ValueError):
    """The clinical data folders disagree; the message names the file and the field."""


@dataclass(frozen=True)
class Knowledge:
    ruleset: RuleSet
    library: fhir.QuestionnaireLibrary
    terminology: Terminology
    vocabulary: fhir.Vocabulary

    @classmethod
    def load(cls, rules_dir: Path, questionnaires_dir: Path, terminology_dir: Path) -> Knowledge:
        """Validate everything; raises ValueError (RuleFileError, InvalidResource, ...)."""
        terminology = Terminology.load(terminology_dir, validate=fhir.validate_resource)
        vocabulary = fhir.Vocabulary.from_terminology(terminology)
        library = fhir.QuestionnaireLibrary.load(questionnaires_dir, vocabulary=vocabulary)
        _check_questionnaire_codes(questionnaires_dir, library, terminology)
        ruleset = load_ruleset(rules_dir, terminology, validate_resource=fhir.validate_resource)
        return cls(ruleset, library, terminology, vocabulary)


def _check_questionnaire_codes(
    directory: Path, library: fhir.QuestionnaireLibrary, terminology: Terminology
) -> None:
    """Every local code in a bundled form exists; every SNOMED code is one the ConceptMap names."""
    known_standard = {(m.system, m.code) for m in terminology.mappings}
    for raw in library.search():
        stack = list(raw.get("item", []))
        while stack:
            item = stack.pop()
            where = f"{directory}/{raw['id']}: item {item.get('linkId')!r}"
            codings = list(item.get("code", []))
            codings += [
                o["valueCoding"] for o in item.get("answerOption", []) if "valueCoding" in o
            ]
            for coding in codings:
                system, code = coding.get("system"), coding.get("code")
                if system == LOCAL_SYSTEM and code not in terminology.concepts:
                    raise KnowledgeError(f"{where}: code {code!r} is not in {LOCAL_SYSTEM}")
                if system == SNOMED and (system, code) not in known_standard:
                    raise KnowledgeError(f"{where}: SNOMED CT {code} is not in the ConceptMap")
            stack.extend(item.get("item", []))


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


def canonical_sha256(resource: Mapping[str, Any]) -> str:
    text = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _ParsedCache:
    """The last few validated QRs by content hash: an EHR re-sends the same intake
    each time the chart opens, and FHIR validation is most of a screen's cost.
    Only successfully validated models are kept; they are never mutated."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, fhir.QuestionnaireResponse] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> fhir.QuestionnaireResponse | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: fhir.QuestionnaireResponse) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_PARSED = _ParsedCache(256)


def screen(
    qr: Mapping[str, Any],
    knowledge: Knowledge,
    *,
    hook_instance: str,
    fetch_questionnaire: Callable[[str], dict[str, Any] | None] | None = None,
    max_items: int = 2000,
) -> Screening:
    """Raises ``fhir.InvalidResource`` when ``qr`` is not a valid R4 QuestionnaireResponse.

    ``fetch_questionnaire(canonical)`` should return the Questionnaire JSON or
    None; it is only called when the form is neither contained nor bundled.
    """
    fhir.count_items(qr, max_items)
    sha256 = canonical_sha256(qr)
    parsed = _PARSED.get(sha256)
    if parsed is None:
        parsed = fhir.parse_questionnaire_response(qr)
        _PARSED.put(sha256, parsed)
    questionnaire, resolution = fhir.resolve_questionnaire(
        parsed, knowledge.library, fetch_questionnaire
    )
    facts = fhir.extract_facts(
        parsed, questionnaire, max_items=max_items, vocabulary=knowledge.vocabulary
    )
    evaluation = evaluate(knowledge.ruleset, facts, hook_instance=hook_instance)
    used = parsed.questionnaire
    if questionnaire is not None and questionnaire.url:
        used = questionnaire.url + (f"|{questionnaire.version}" if questionnaire.version else "")
    return Screening(
        evaluation=evaluation,
        qr_id=parsed.id,
        qr_version=parsed.meta.versionId if parsed.meta is not None else None,
        qr_sha256=sha256,
        questionnaire=used,
        questionnaire_resolution=resolution,
        subject=facts.subject,
    )
