"""The anti-corruption layer: FHIR R4 (fhir.resources R4B models) in, engine ``Facts`` out.

The only module that imports ``fhir.resources``. Rules never see a linkId:
items are read by their codes (``item.code`` in the local CodeSystem, or a
SNOMED CT / LOINC code the ConceptMap links to a local question), and answers
that carry their own meaning (a ``valueCoding`` naming a local concept or a
mapped finding) count even when the Questionnaire is unknown.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from service import PROJECT_ROOT
from service.engine import NO, UNKNOWN, YES, Answer, Facts
from service.terminology import (
    LOCAL_SYSTEM,
    NO_CODES,
    UNKNOWN_CODES,
    YES_CODES,
    Terminology,
)

__all__ = [
    "InvalidResource",
    "Questionnaire",
    "QuestionnaireLibrary",
    "QuestionnaireResponse",
    "Vocabulary",
    "count_items",
    "extract_facts",
    "parse_questionnaire",
    "parse_questionnaire_response",
    "resolve_questionnaire",
    "validate_resource",
]

_MAX_REPORTED_ERRORS = 10
_HOURS_PER_UNIT = {
    "min": 1 / 60,
    "minute": 1 / 60,
    "minutes": 1 / 60,
    "h": 1.0,
    "hr": 1.0,
    "hour": 1.0,
    "hours": 1.0,
    "d": 24.0,
    "day": 24.0,
    "days": 24.0,
    "wk": 168.0,
    "week": 168.0,
    "weeks": 168.0,
}


class InvalidResource(ValueError):
    """Input that is not the FHIR resource expected; ``expression`` locates the problem."""

    def __init__(self, message: str, expression: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.expression: tuple[str, ...] = tuple(expression)


# ---------------------------------------------------------------- parsing


def _location(resource_type: str, loc: Sequence[int | str]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _validate(model: type[Any], data: object, resource_type: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidResource(f"a {resource_type} must be a JSON object", (resource_type,))
    found = data.get("resourceType")
    if found != resource_type:
        raise InvalidResource(
            f"expected resourceType {resource_type!r}, got {found!r}",
            (f"{resource_type}.resourceType",),
        )
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        errors = exc.errors()[:_MAX_REPORTED_ERRORS]
        where = tuple(_location(resource_type, e["loc"]) for e in errors)
        reasons = "; ".join(
            f"{_location(resource_type, e['loc'])}: {' '.join(str(e['msg']).split())}"
            for e in errors
        )
        raise InvalidResource(f"{resource_type} is not valid FHIR R4: {reasons}", where) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidResource(
            f"{resource_type} is not valid FHIR R4: {exc}", (resource_type,)
        ) from None


def parse_questionnaire_response(data: object) -> QuestionnaireResponse:
    qr: QuestionnaireResponse = _validate(QuestionnaireResponse, data, "QuestionnaireResponse")
    return qr


def parse_questionnaire(data: object) -> Questionnaire:
    q: Questionnaire = _validate(Questionnaire, data, "Questionnaire")
    return q


def validate_resource(data: Mapping[str, Any], path: Path) -> None:
    """Validate any R4 resource read from a file; raise ValueError naming file and field."""
    resource_type = str(data.get("resourceType"))
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, LookupError):
        raise InvalidResource(f"{path}: unknown resourceType {resource_type!r}") from None
    try:
        _validate(model, data, resource_type)
    except InvalidResource as exc:
        raise InvalidResource(f"{path}: {exc.message}", exc.expression) from None


def count_items(data: object, limit: int) -> int:
    """Count QR items (groups, nested items, items under answers) in raw JSON; stop past limit."""
    count = 0
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        items = node.get("item")
        if isinstance(items, list):
            count += len(items)
            if count > limit:
                raise InvalidResource(
                    f"QuestionnaireResponse has more than {limit} items",
                    ("QuestionnaireResponse.item",),
                )
            stack.extend(items)
        answers = node.get("answer")
        if isinstance(answers, list):
            stack.extend(answers)
    return count


# ---------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """What reading answers needs from the terminology, as plain look-up tables."""

    #: question concept -> answer type
    answer_types: Mapping[str, str]
    #: answer code -> its question concept
    answer_of: Mapping[str, str]
    #: answer code -> rank (higher is more alarming for ordered choices)
    ranks: Mapping[str, int]
    displays: Mapping[str, str]
    definitions: Mapping[str, str]
    by_standard: Mapping[tuple[str, str], str]

    @classmethod
    def from_terminology(cls, terminology: Terminology) -> Vocabulary:
        concepts = terminology.concepts.values()
        return cls(
            answer_types={c.code: c.answer_type or "" for c in concepts if c.kind == "question"},
            answer_of={c.code: c.answer_of for c in concepts if c.answer_of},
            ranks={c.code: c.rank or 0 for c in concepts if c.kind == "answer"},
            displays={c.code: c.display for c in concepts},
            definitions={c.code: c.definition for c in concepts},
            by_standard=terminology.by_standard,
        )

    def concept_of_item_code(self, system: str | None, code: str | None) -> str | None:
        if system == LOCAL_SYSTEM and code in self.answer_types:
            return code
        if system and code:
            return self.by_standard.get((system, code))
        return None


@functools.cache
def default_vocabulary() -> Vocabulary:
    """The vocabulary of the bundled ``terminology/`` (read once)."""
    return Vocabulary.from_terminology(Terminology.load(PROJECT_ROOT / "terminology"))


# ---------------------------------------------------------------- form index


@dataclass(frozen=True)
class _Condition:
    question: str
    operator: str
    answer: Any


@dataclass(frozen=True)
class _Item:
    link_id: str
    text: str
    concept: str | None
    parent: str | None
    enable_when: tuple[_Condition, ...] = ()
    enable_behavior: str = "all"


@dataclass(frozen=True)
class FormIndex:
    """A Questionnaire's items by linkId, with their concept; built once per form."""

    items: Mapping[str, _Item]
    has_logic: bool

    @classmethod
    def build(cls, questionnaire: Questionnaire, vocabulary: Vocabulary) -> FormIndex:
        items: dict[str, _Item] = {}
        stack: list[tuple[Any, str | None]] = [(i, None) for i in questionnaire.item or []]
        while stack:
            item, parent = stack.pop()
            concept = None
            for coding in item.code or []:
                concept = vocabulary.concept_of_item_code(coding.system, coding.code)
                if concept is not None:
                    break
            conditions = tuple(
                _Condition(ew.question, ew.operator, _enable_when_value(ew))
                for ew in item.enableWhen or []
            )
            items[item.linkId] = _Item(
                link_id=item.linkId,
                text=item.text or "",
                concept=concept,
                parent=parent,
                enable_when=conditions,
                enable_behavior=item.enableBehavior or "all",
            )
            stack.extend((child, item.linkId) for child in item.item or [])
        return cls(items=items, has_logic=any(i.enable_when for i in items.values()))


def _enable_when_value(ew: Any) -> Any:
    for name in (
        "answerBoolean",
        "answerDecimal",
        "answerInteger",
        "answerDate",
        "answerDateTime",
        "answerTime",
        "answerString",
    ):
        value = getattr(ew, name, None)
        if value is not None:
            return float(value) if isinstance(value, Decimal) else value
    if ew.answerCoding is not None:
        return (ew.answerCoding.system, ew.answerCoding.code)
    if ew.answerQuantity is not None and ew.answerQuantity.value is not None:
        return float(ew.answerQuantity.value)
    return None


_PINNED: dict[int, tuple[Questionnaire, FormIndex]] = {}
_RECENT: dict[int, tuple[Questionnaire, FormIndex]] = {}
_RECENT_MAX = 64


def _index_of(questionnaire: Questionnaire, vocabulary: Vocabulary) -> FormIndex:
    key = id(questionnaire)
    for cache in (_PINNED, _RECENT):
        entry = cache.get(key)
        if entry is not None and entry[0] is questionnaire:
            return entry[1]
    index = FormIndex.build(questionnaire, vocabulary)
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.pop(next(iter(_RECENT)))
    _RECENT[key] = (questionnaire, index)
    return index


# ---------------------------------------------------------------- library


@dataclass(frozen=True)
class _Entry:
    raw: dict[str, Any]
    model: Questionnaire
    url: str
    version: str


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.split("."))


class QuestionnaireLibrary:
    """The Questionnaires bundled with the service (``questionnaires/``), parsed once."""

    def __init__(self, entries: Sequence[_Entry], intake_canonical: str) -> None:
        self._entries = tuple(entries)
        self._by_canonical = {f"{e.url}|{e.version}": e for e in entries}
        self._latest: dict[str, _Entry] = {}
        for e in sorted(entries, key=lambda e: _version_key(e.version)):
            self._latest[e.url] = e
        self._by_id = {str(e.raw["id"]): e for e in entries}
        self._intake = intake_canonical

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        vocabulary: Vocabulary | None = None,
        intake_id: str = "exercise-back-pain-intake",
    ) -> QuestionnaireLibrary:
        vocabulary = vocabulary or default_vocabulary()
        entries: list[_Entry] = []
        seen: set[str] = set()
        paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
        if not paths:
            raise InvalidResource(f"{directory}: no Questionnaire JSON files found")
        for path in paths:
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InvalidResource(f"{path}: not readable JSON: {exc}") from exc
            try:
                model = parse_questionnaire(raw)
            except InvalidResource as exc:
                raise InvalidResource(f"{path}: {exc.message}", exc.expression) from None
            for name in ("id", "url", "version"):
                if not raw.get(name):
                    raise InvalidResource(f"{path}: Questionnaire.{name} is required")
            if raw.get("status") != "active":
                raise InvalidResource(f"{path}: Questionnaire.status must be active")
            _check_link_ids(path, raw)
            canonical = f"{raw['url']}|{raw['version']}"
            if canonical in seen:
                raise InvalidResource(f"{path}: duplicate Questionnaire {canonical}")
            seen.add(canonical)
            entries.append(_Entry(raw=raw, model=model, url=raw["url"], version=raw["version"]))
            _PINNED[id(model)] = (model, FormIndex.build(model, vocabulary))
        intake = [e for e in entries if e.raw["id"] == intake_id]
        if not intake:
            raise InvalidResource(
                f"{directory}: the intake Questionnaire id={intake_id} is missing"
            )
        return cls(entries, intake[0].url)

    def get(self, canonical: str) -> Questionnaire | None:
        url, _, version = canonical.partition("|")
        entry = self._by_canonical.get(canonical) if version else self._latest.get(url)
        return entry.model if entry else None

    def by_id(self, id: str) -> dict[str, Any] | None:
        entry = self._by_id.get(id)
        return entry.raw if entry else None

    def search(self, url: str | None = None) -> list[dict[str, Any]]:
        if url is None:
            return [e.raw for e in self._entries]
        base, _, version = url.partition("|")
        return [e.raw for e in self._entries if e.url == base and version in ("", e.version)]

    @property
    def intake_canonical(self) -> str:
        return self._intake

    def canonicals(self) -> list[str]:
        return sorted(self._by_canonical)


def _check_link_ids(path: Path, raw: Mapping[str, Any]) -> None:
    seen: set[str] = set()
    stack = list(raw.get("item", []))
    while stack:
        item = stack.pop()
        link_id = item.get("linkId")
        if link_id in seen:
            raise InvalidResource(f"{path}: Questionnaire.item linkId {link_id!r} is not unique")
        seen.add(link_id)
        stack.extend(item.get("item", []))


# ---------------------------------------------------------------- resolution


def resolve_questionnaire(
    qr: QuestionnaireResponse,
    library: QuestionnaireLibrary,
    fetch: Callable[[str], dict[str, Any] | None] | None = None,
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
    bundled = library.get(canonical)
    if bundled is not None:
        return bundled, "bundled"
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


# ---------------------------------------------------------------- facts


@dataclass
class _Reading:
    """Mutable state of one extraction; becomes frozen Facts at the end."""

    vocabulary: Vocabulary
    answers: dict[str, Answer] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    values_by_link: dict[str, list[Any]] = field(default_factory=dict)

    def keep(self, answer: Answer) -> None:
        current = self.answers.get(answer.concept)
        if current is None or self._alarm(answer) > self._alarm(current):
            self.answers[answer.concept] = answer

    def _alarm(self, answer: Answer) -> float:
        value = answer.value
        kind = self.vocabulary.answer_types.get(answer.concept, "")
        if kind == "yes-no-unknown":
            return {NO: 0.0, UNKNOWN: 1.0, YES: 2.0}.get(str(value), 1.0)
        if value == UNKNOWN:
            return 0.5 if kind == "ordered-choice" else -1.0
        if isinstance(value, int | float):
            return float(value)
        if kind == "ordered-choice":
            return float(self.vocabulary.ranks.get(str(value), 0))
        return 0.0  # unordered choice: the first answer stays


def _walk(items: Sequence[Any] | None) -> Iterator[Any]:
    stack = list(reversed(items or []))
    while stack:
        item = stack.pop()
        yield item
        nested = list(item.item or [])
        for answer in item.answer or []:
            nested.extend(answer.item or [])
        stack.extend(reversed(nested))


def extract_facts(
    qr: QuestionnaireResponse,
    questionnaire: Questionnaire | None,
    *,
    max_items: int = 2000,
    vocabulary: Vocabulary | None = None,
) -> Facts:
    vocabulary = vocabulary or default_vocabulary()
    index = _index_of(questionnaire, vocabulary) if questionnaire is not None else None
    reading = _Reading(vocabulary)
    seen_concepts: dict[str, str] = {}  # concept -> a linkId it was asked under
    for count, item in enumerate(_walk(qr.item), start=1):
        if count > max_items:
            raise InvalidResource(
                f"QuestionnaireResponse has more than {max_items} items",
                ("QuestionnaireResponse.item",),
            )
        form_item = index.items.get(item.linkId) if index else None
        concept = form_item.concept if form_item else None
        question = item.text or (form_item.text if form_item else "") or ""
        answers = list(item.answer or [])
        if answers:
            reading.values_by_link.setdefault(item.linkId, []).extend(
                _comparable(a) for a in answers
            )
        if concept is not None:
            seen_concepts.setdefault(concept, item.linkId)
            for answer in answers:
                _read_item_answer(reading, concept, item.linkId, question, answer)
        else:
            for answer in answers:
                _read_self_describing(reading, item.linkId, question, answer)
    disabled: set[str] = set()
    if index is not None and index.has_logic:
        disabled = _disabled_concepts(index, reading)
    if questionnaire is None:
        reference = qr.questionnaire or "(none given)"
        reading.notes.insert(
            0,
            f"The form {reference} could not be resolved (not contained, not bundled, "
            "not on the FHIR server): only self-describing coded answers were read.",
        )
    subject = qr.subject.reference if qr.subject is not None else None
    return Facts(
        answers=dict(reading.answers),
        disabled=frozenset(disabled),
        questionnaire_known=questionnaire is not None,
        notes=tuple(dict.fromkeys(reading.notes)),
        subject=subject,
    )


def _comparable(answer: Any) -> Any:
    if answer.valueCoding is not None:
        return (answer.valueCoding.system, answer.valueCoding.code)
    if answer.valueQuantity is not None and answer.valueQuantity.value is not None:
        return float(answer.valueQuantity.value)
    for name in (
        "valueBoolean",
        "valueInteger",
        "valueDecimal",
        "valueString",
        "valueDate",
        "valueDateTime",
        "valueTime",
        "valueUri",
    ):
        value = getattr(answer, name, None)
        if value is not None:
            return float(value) if isinstance(value, Decimal) else value
    return None


def _yes_no(answer: Any, concept: str) -> tuple[str, str | None, str] | None:
    if answer.valueBoolean is not None:
        return (YES, None, "Yes") if answer.valueBoolean else (NO, None, "No")
    coding = answer.valueCoding
    if coding is None:
        return None
    key = (coding.system, coding.code)
    if key in YES_CODES:
        return YES, coding.code, coding.display or "Yes"
    if key in NO_CODES:
        return NO, coding.code, coding.display or "No"
    if key in UNKNOWN_CODES:
        return UNKNOWN, coding.code, coding.display or "Unknown"
    if coding.system == LOCAL_SYSTEM and coding.code == concept:
        return YES, coding.code, coding.display or "Yes"
    return None


def _read_item_answer(
    reading: _Reading, concept: str, link_id: str, question: str, answer: Any
) -> None:
    vocab = reading.vocabulary
    kind = vocab.answer_types.get(concept, "")
    value: str | int | float | None = None
    code: str | None = None
    display = ""
    if kind == "yes-no-unknown":
        read = _yes_no(answer, concept)
        if read is not None:
            value, code, display = read
    elif kind in {"choice", "ordered-choice"}:
        coding = answer.valueCoding
        if (
            coding is not None
            and coding.system == LOCAL_SYSTEM
            and (vocab.answer_of.get(coding.code or "") == concept)
        ):
            value, code = coding.code, coding.code
            display = coding.display or vocab.displays.get(coding.code or "", str(coding.code))
        elif coding is not None and (coding.system, coding.code) in UNKNOWN_CODES:
            value, code, display = UNKNOWN, coding.code, coding.display or "Unknown"
    else:
        number = _number(answer, concept)
        if number is not None:
            value, display = number, _format_number(number)
    if value is None:
        reading.notes.append(
            f"The answer to '{question or concept}' (linkId {link_id}) could not be read "
            f"as a {kind or 'coded'} answer; it counts as Unknown."
        )
        value, display = UNKNOWN, "Unreadable answer (counted as Unknown)"
    reading.keep(
        Answer(
            concept,
            value,
            link_id,
            question or vocab.definitions.get(concept, concept),
            code,
            display,
        )
    )


def _number(answer: Any, concept: str) -> int | float | None:
    if answer.valueInteger is not None:
        return int(answer.valueInteger)
    if answer.valueDecimal is not None:
        return float(answer.valueDecimal)
    quantity = answer.valueQuantity
    if quantity is None or quantity.value is None:
        return None
    value = float(quantity.value)
    if concept == "hours-since-onset":
        unit = (quantity.code or quantity.unit or "h").strip().lower()
        factor = _HOURS_PER_UNIT.get(unit)
        if factor is None:
            return None
        value *= factor
    return int(value) if value.is_integer() else value


def _format_number(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _read_self_describing(reading: _Reading, link_id: str, question: str, answer: Any) -> None:
    coding = answer.valueCoding
    if coding is None or not coding.code:
        return
    vocab = reading.vocabulary
    code = coding.code
    concept: str | None = None
    value: str | None = None
    if coding.system == LOCAL_SYSTEM:
        if vocab.answer_types.get(code) == "yes-no-unknown":
            concept, value = code, YES
        elif code in vocab.answer_of:
            concept, value = vocab.answer_of[code], code
    else:
        mapped = vocab.by_standard.get((coding.system or "", code))
        if mapped is not None and vocab.answer_types.get(mapped) == "yes-no-unknown":
            concept, value = mapped, YES
    if concept is None or value is None:
        return
    display = coding.display or vocab.displays.get(code, code)
    reading.keep(
        Answer(concept, value, link_id, question or vocab.definitions[concept], code, display)
    )


def _disabled_concepts(index: FormIndex, reading: _Reading) -> set[str]:
    enabled: dict[str, bool] = {}

    def is_enabled(link_id: str) -> bool:
        if link_id in enabled:
            return enabled[link_id]
        enabled[link_id] = True  # cycle guard
        item = index.items[link_id]
        result = item.parent is None or is_enabled(item.parent)
        if result and item.enable_when:
            checks = (_condition_holds(c, reading.values_by_link) for c in item.enable_when)
            result = any(checks) if item.enable_behavior == "any" else all(checks)
        enabled[link_id] = result
        return result

    disabled: set[str] = set()
    for link_id, item in index.items.items():
        if item.concept is None or is_enabled(link_id):
            continue
        if item.concept in reading.answers:
            if link_id in reading.values_by_link:
                reading.notes.append(
                    f"'{item.text or item.concept}' (linkId {link_id}) was answered although "
                    "the form's logic disables it; the answer was kept."
                )
            continue
        disabled.add(item.concept)
    return disabled


def _condition_holds(condition: _Condition, values: Mapping[str, list[Any]]) -> bool:
    present = [v for v in values.get(condition.question, []) if v is not None]
    expected = condition.answer
    if condition.operator == "exists":
        return bool(present) == bool(expected)
    if not present:
        return False
    if condition.operator == "=":
        return any(_equal(v, expected) for v in present)
    if condition.operator == "!=":
        return not any(_equal(v, expected) for v in present)
    try:
        if condition.operator == ">":
            return any(v > expected for v in present)
        if condition.operator == "<":
            return any(v < expected for v in present)
        if condition.operator == ">=":
            return any(v >= expected for v in present)
        if condition.operator == "<=":
            return any(v <= expected for v in present)
    except TypeError:
        return False
    return False


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(value, tuple) and isinstance(expected, tuple):
        system, code = expected
        return bool(value[1] == code and (system is None or value[0] == system))
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    return bool(value == expected)
