"""Reading one answer into the local vocabulary: Yes/No/Unknown, choices, numbers.

An item read by its concept (``read_item_answer``) must answer in that concept's
type, else it counts as Unknown with a note; an answer that carries its own
meaning (a ``valueCoding`` naming a local concept or a mapped finding) counts
even under an unknown item (``read_self_describing``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from service.engine import NO, UNKNOWN, YES, Answer
from service.fhir.vocabulary import Vocabulary

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


@dataclass
class Reading:
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


def comparable(answer: Any) -> Any:
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


def _yes_no(answer: Any, concept: str, vocab: Vocabulary) -> tuple[str, str | None, str] | None:
    if answer.valueBoolean is not None:
        return (YES, None, "Yes") if answer.valueBoolean else (NO, None, "No")
    coding = answer.valueCoding
    if coding is None:
        return None
    key = (coding.system, coding.code)
    if key in vocab.yes_codes:
        return YES, coding.code, coding.display or "Yes"
    if key in vocab.no_codes:
        return NO, coding.code, coding.display or "No"
    if key in vocab.unknown_codes:
        return UNKNOWN, coding.code, coding.display or "Unknown"
    if coding.system == vocab.local_system and coding.code == concept:
        return YES, coding.code, coding.display or "Yes"
    return None


def read_item_answer(
    reading: Reading, concept: str, link_id: str, question: str, answer: Any
) -> None:
    vocab = reading.vocabulary
    kind = vocab.answer_types.get(concept, "")
    value: str | int | float | None = None
    code: str | None = None
    display = ""
    if kind == "yes-no-unknown":
        read = _yes_no(answer, concept, vocab)
        if read is not None:
            value, code, display = read
    elif kind in {"choice", "ordered-choice"}:
        coding = answer.valueCoding
        if (
            coding is not None
            and coding.system == vocab.local_system
            and (vocab.answer_of.get(coding.code or "") == concept)
        ):
            value, code = coding.code, coding.code
            display = coding.display or vocab.displays.get(coding.code or "", str(coding.code))
        elif coding is not None and (coding.system, coding.code) in vocab.unknown_codes:
            value, code, display = UNKNOWN, coding.code, coding.display or "Unknown"
    else:
        number = _number(answer, concept)
        if number is not None:
            value, display = number, _format_number(number)
    if value is None:
        reading.notes.append(
            f"The answer to '{question or concept}' could not be read "
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


def read_self_describing(reading: Reading, link_id: str, question: str, answer: Any) -> None:
    coding = answer.valueCoding
    if coding is None or not coding.code:
        return
    vocab = reading.vocabulary
    code = coding.code
    concept: str | None = None
    value: str | None = None
    if coding.system == vocab.local_system:
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
