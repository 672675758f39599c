"""Code systems the service speaks, and the local terminology in ``terminology/``.

Loading checks the files against each other (every ValueSet and ConceptMap
code exists in the local CodeSystem, every standard code names its source);
FHIR-level validation is done by the caller-supplied ``validate`` (see
``service.fhir.validate_resource``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.fhir.vocabulary import Vocabulary

BASE_URL = "https://fhir.backpain-cds.dev"
LOCAL_SYSTEM = f"{BASE_URL}/CodeSystem/backpain-cds"
OVERRIDE_REASON_SYSTEM = f"{BASE_URL}/CodeSystem/override-reason"
VALUESET_BASE = f"{BASE_URL}/ValueSet/"
MAPPING_SOURCE_EXT = f"{BASE_URL}/StructureDefinition/mapping-source"
MAPPING_EVIDENCE_EXT = f"{BASE_URL}/StructureDefinition/mapping-evidence"

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

#: Yes / No / Unknown answer codes (LOINC answer list and SNOMED qualifier values).
YES_CODES = frozenset({(LOINC, "LA33-6"), (SNOMED, "373066001")})
NO_CODES = frozenset({(LOINC, "LA32-8"), (SNOMED, "373067005")})
UNKNOWN_CODES = frozenset({(LOINC, "LA4489-6"), (SNOMED, "261665006")})

#: Mappings strong enough to read a foreign item or answer code as a local question.
_READABLE_EQUIVALENCES = frozenset({"equal", "equivalent", "wider", "narrower", "inexact"})
_WEAK_EQUIVALENCES = frozenset({"inexact", "relatedto"})

Validator = Callable[[Mapping[str, Any], Path], None]


class TerminologyError(ValueError):
    """A terminology file is inconsistent; the message names the file and the field."""


@dataclass(frozen=True)
class LocalConcept:
    code: str
    display: str
    definition: str
    kind: str  # question | answer | card-topic
    family: str | None = None
    answer_type: str | None = None  # yes-no-unknown | ordered-choice | choice | integer | decimal
    answer_of: str | None = None
    rank: int | None = None


@dataclass(frozen=True)
class StandardMapping:
    local: str
    system: str
    code: str
    display: str
    equivalence: str
    evidence: str  # confirmed | likely
    source: str


@dataclass(frozen=True)
class Terminology:
    concepts: Mapping[str, LocalConcept]
    #: ValueSet canonical url -> local codes
    value_sets: Mapping[str, frozenset[str]]
    mappings: tuple[StandardMapping, ...]
    override_reasons: Mapping[str, str]
    #: (system, code) of a standard code -> the local *question* concept it can stand for
    by_standard: Mapping[tuple[str, str], str]

    @classmethod
    def load(cls, directory: Path, *, validate: Validator | None = None) -> Terminology:
        resources = _read_all(directory, validate)
        codesystems = [r for r in resources if r[1].get("resourceType") == "CodeSystem"]
        local = [r for r in codesystems if r[1].get("url") == LOCAL_SYSTEM]
        if len(local) != 1:
            raise TerminologyError(
                f"{directory}: expected exactly one CodeSystem with url {LOCAL_SYSTEM}, "
                f"found {len(local)}"
            )
        concepts = _concepts(*local[0])
        overrides = [r for r in codesystems if r[1].get("url") == OVERRIDE_REASON_SYSTEM]
        override_reasons = {
            str(c["code"]): str(c.get("display", c["code"]))
            for _, data in overrides
            for c in data.get("concept", [])
        }
        value_sets = {
            str(data["url"]): _expand(path, data, concepts)
            for path, data in resources
            if data.get("resourceType") == "ValueSet"
        }
        mappings = tuple(
            mapping
            for path, data in resources
            if data.get("resourceType") == "ConceptMap"
            for mapping in _mappings(path, data, concepts)
        )
        return cls(
            concepts=concepts,
            value_sets=value_sets,
            mappings=mappings,
            override_reasons=override_reasons,
            by_standard=_reverse(mappings, concepts),
        )

    def questions(self) -> dict[str, LocalConcept]:
        return {c.code: c for c in self.concepts.values() if c.kind == "question"}

    def topics(self) -> dict[str, LocalConcept]:
        return {c.code: c for c in self.concepts.values() if c.kind == "card-topic"}

    def choices_of(self, concept: str) -> tuple[str, ...]:
        """The answer codes of a choice question, least alarming first."""
        answers = [c for c in self.concepts.values() if c.answer_of == concept]
        return tuple(c.code for c in sorted(answers, key=lambda c: c.rank or 0))

    def vocabulary(self) -> Vocabulary:
        """The look-up tables the FHIR adapter reads answers with."""
        concepts = self.concepts.values()
        return Vocabulary(
            local_system=LOCAL_SYSTEM,
            answer_types={c.code: c.answer_type or "" for c in concepts if c.kind == "question"},
            answer_of={c.code: c.answer_of for c in concepts if c.answer_of},
            ranks={c.code: c.rank or 0 for c in concepts if c.kind == "answer"},
            displays={c.code: c.display for c in concepts},
            definitions={c.code: c.definition for c in concepts},
            by_standard=self.by_standard,
            yes_codes=YES_CODES,
            no_codes=NO_CODES,
            unknown_codes=UNKNOWN_CODES,
        )

    def expand(self, value_set: str) -> frozenset[str]:
        try:
            return self.value_sets[value_set]
        except KeyError:
            raise TerminologyError(f"unknown ValueSet {value_set!r}") from None


def _read_all(directory: Path, validate: Validator | None) -> list[tuple[Path, dict[str, Any]]]:
    if not directory.is_dir():
        raise TerminologyError(f"{directory}: terminology directory not found")
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TerminologyError(f"{path}: not readable JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("resourceType") not in {
            "CodeSystem",
            "ValueSet",
            "ConceptMap",
        }:
            raise TerminologyError(f"{path}: resourceType must be CodeSystem|ValueSet|ConceptMap")
        if not data.get("url"):
            raise TerminologyError(f"{path}: url is required")
        if validate is not None:
            validate(data, path)
        out.append((path, data))
    return out


def _property(concept: Mapping[str, Any], name: str) -> Any:
    for prop in concept.get("property", []):
        if prop.get("code") == name:
            for key, value in prop.items():
                if key.startswith("value"):
                    return value
    return None


def _concepts(path: Path, data: Mapping[str, Any]) -> dict[str, LocalConcept]:
    concepts: dict[str, LocalConcept] = {}
    for index, raw in enumerate(data.get("concept", [])):
        where = f"{path}: concept[{index}]"
        code = raw.get("code")
        if not code or code in concepts:
            raise TerminologyError(f"{where}.code: missing or duplicate code {code!r}")
        kind = _property(raw, "kind")
        if kind not in {"question", "answer", "card-topic"}:
            raise TerminologyError(f"{where}.property[kind]: expected question|answer|card-topic")
        concept = LocalConcept(
            code=code,
            display=str(raw.get("display", code)),
            definition=str(raw.get("definition", raw.get("display", code))),
            kind=kind,
            family=_property(raw, "family"),
            answer_type=_property(raw, "answer-type"),
            answer_of=_property(raw, "answer-of"),
            rank=_property(raw, "rank"),
        )
        if kind == "question" and concept.answer_type not in {
            "yes-no-unknown",
            "ordered-choice",
            "choice",
            "integer",
            "decimal",
        }:
            raise TerminologyError(
                f"{where}.property[answer-type]: invalid {concept.answer_type!r}"
            )
        if kind == "answer" and concept.answer_of is None:
            raise TerminologyError(f"{where}.property[answer-of]: required for an answer code")
        concepts[code] = concept
    for concept in concepts.values():
        if concept.answer_of is not None and concept.answer_of not in concepts:
            raise TerminologyError(
                f"{path}: {concept.code}.answer-of names unknown {concept.answer_of}"
            )
    return concepts


def _expand(
    path: Path, data: Mapping[str, Any], concepts: Mapping[str, LocalConcept]
) -> frozenset[str]:
    codes: set[str] = set()
    for i, include in enumerate(data.get("compose", {}).get("include", [])):
        if include.get("system") != LOCAL_SYSTEM:
            raise TerminologyError(f"{path}: compose.include[{i}].system must be {LOCAL_SYSTEM}")
        listed = include.get("concept")
        if listed is None:
            codes.update(concepts)
            continue
        for j, entry in enumerate(listed):
            code = entry.get("code")
            if code not in concepts:
                raise TerminologyError(
                    f"{path}: compose.include[{i}].concept[{j}].code {code!r} "
                    "is not in the local CodeSystem"
                )
            if "display" in entry and entry["display"] != concepts[code].display:
                raise TerminologyError(
                    f"{path}: compose.include[{i}].concept[{j}].display {entry['display']!r} "
                    f"differs from the CodeSystem's {concepts[code].display!r}"
                )
            codes.add(code)
    return frozenset(codes)


def _extension(target: Mapping[str, Any], url: str) -> Any:
    for ext in target.get("extension", []):
        if ext.get("url") == url:
            return ext.get("valueString", ext.get("valueCode"))
    return None


def _mappings(
    path: Path, data: Mapping[str, Any], concepts: Mapping[str, LocalConcept]
) -> Iterable[StandardMapping]:
    for g, group in enumerate(data.get("group", [])):
        if group.get("source") != LOCAL_SYSTEM:
            raise TerminologyError(f"{path}: group[{g}].source must be {LOCAL_SYSTEM}")
        system = group.get("target")
        if system not in {SNOMED, LOINC, ICD10CM}:
            raise TerminologyError(f"{path}: group[{g}].target {system!r} is not supported")
        for e, element in enumerate(group.get("element", [])):
            local = element.get("code")
            if local not in concepts:
                raise TerminologyError(
                    f"{path}: group[{g}].element[{e}].code {local!r} is not a local code"
                )
            for t, target in enumerate(element.get("target", [])):
                where = f"{path}: group[{g}].element[{e}].target[{t}]"
                source = _extension(target, MAPPING_SOURCE_EXT)
                evidence = _extension(target, MAPPING_EVIDENCE_EXT)
                if not source:
                    raise TerminologyError(f"{where}.extension[mapping-source]: missing")
                if evidence not in {"confirmed", "likely"}:
                    raise TerminologyError(
                        f"{where}.extension[mapping-evidence]: expected confirmed|likely"
                    )
                equivalence = str(target.get("equivalence", ""))
                if evidence == "likely" and equivalence not in _WEAK_EQUIVALENCES:
                    raise TerminologyError(
                        f"{where}.equivalence: a likely mapping must be inexact or relatedto"
                    )
                if not target.get("code") or not target.get("display"):
                    raise TerminologyError(f"{where}: code and display are required")
                yield StandardMapping(
                    local=local,
                    system=system,
                    code=str(target["code"]),
                    display=str(target["display"]),
                    equivalence=equivalence,
                    evidence=evidence,
                    source=str(source),
                )


def _reverse(
    mappings: Iterable[StandardMapping], concepts: Mapping[str, LocalConcept]
) -> dict[tuple[str, str], str]:
    reverse: dict[tuple[str, str], str] = {}
    for m in mappings:
        if concepts[m.local].kind != "question" or m.equivalence not in _READABLE_EQUIVALENCES:
            continue
        key = (m.system, m.code)
        if reverse.get(key, m.local) != m.local:
            raise TerminologyError(
                f"standard code {m.system}|{m.code} maps to two questions: "
                f"{reverse[key]} and {m.local}"
            )
        reverse[key] = m.local
    return reverse
