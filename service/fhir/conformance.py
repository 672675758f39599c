"""Does a QuestionnaireResponse keep the constraints its Questionnaire declares?

Two levels, because the callers differ:

* always (every hook and the portal): a value outside the item's ``minValue`` /
  ``maxValue`` extension or longer than its ``maxLength``, and a completed
  response that names no ``subject``. Such data contradicts the form itself
  and is refused (HTTP 422), never screened as if it were true.
* ``strict`` (the intake portal, whose page renders exactly this form): also the
  answer's type for the item's type, membership of ``answerOption``, answers
  on groups and display items or on linkIds the form does not have, several
  answers to an item that does not repeat, and, once the response is
  ``completed``, every enabled ``required`` item answered.

EHR hooks stay lenient on the strict points on purpose: a Yes coded in SNOMED
CT instead of LOINC, a boolean for a yes/no choice or a missing answer is read
as the clinical rules define (Unknown, "screen incomplete"), so a red flag
elsewhere in the same response is still reported instead of lost in a refusal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from service.fhir.answers import comparable
from service.fhir.form import FormIndex
from service.fhir.items import walk_items
from service.fhir.parse import InvalidResource

MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
_BOUND_FIELDS = (
    "valueInteger",
    "valueDecimal",
    "valueDate",
    "valueDateTime",
    "valueTime",
    "valueInstant",
)

#: The answer value[x] each item type allows (FHIR R4 Questionnaire.item.type).
ANSWER_TYPES: dict[str, frozenset[str]] = {
    "boolean": frozenset({"valueBoolean"}),
    "decimal": frozenset({"valueDecimal"}),
    "integer": frozenset({"valueInteger"}),
    "date": frozenset({"valueDate"}),
    "dateTime": frozenset({"valueDateTime"}),
    "time": frozenset({"valueTime"}),
    "string": frozenset({"valueString"}),
    "text": frozenset({"valueString"}),
    "url": frozenset({"valueUri"}),
    "choice": frozenset({"valueCoding"}),
    "open-choice": frozenset({"valueCoding", "valueString"}),
    "attachment": frozenset({"valueAttachment"}),
    "reference": frozenset({"valueReference"}),
    "quantity": frozenset({"valueQuantity"}),
}
_VALUE_FIELDS = sorted({name for names in ANSWER_TYPES.values() for name in names})
_COMPLETED = {"completed", "amended"}
_MAX_REPORTED = 10


@dataclass(frozen=True)
class Issue:
    """One broken constraint: where (FHIRPath-like), which item, and why in words."""

    expression: str
    message: str
    link_id: str | None = None


class NonConformant(InvalidResource):
    """The response breaks its Questionnaire's constraints; ``issues`` says which (HTTP 422)."""

    def __init__(self, issues: list[Issue]) -> None:
        shown = "; ".join(issue.message for issue in issues[:_MAX_REPORTED])
        more = f" (and {len(issues) - _MAX_REPORTED} more)" if len(issues) > _MAX_REPORTED else ""
        super().__init__(
            f"QuestionnaireResponse does not fit its Questionnaire: {shown}{more}",
            tuple(dict.fromkeys(issue.expression for issue in issues[:_MAX_REPORTED])),
        )
        self.issues = tuple(issues)


class _Located(NamedTuple):
    """A QR item and its path (a tuple: one is made per item of every call)."""

    item: Any
    path: str


def _located(items: list[Any] | None, prefix: str) -> Iterator[_Located]:
    """QR items with their path, depth-first (items under items and under answers)."""
    stack = [_Located(item, f"{prefix}.item[{i}]") for i, item in enumerate(items or [])]
    stack.reverse()
    while stack:
        found = stack.pop()
        yield found
        nested: list[_Located] = []
        for i, child in enumerate(found.item.item or []):
            nested.append(_Located(child, f"{found.path}.item[{i}]"))
        for a, answer in enumerate(found.item.answer or []):
            for i, child in enumerate(answer.item or []):
                nested.append(_Located(child, f"{found.path}.answer[{a}].item[{i}]"))
        stack.extend(reversed(nested))


def _value_field(answer: Any) -> str | None:
    return next((name for name in _VALUE_FIELDS if getattr(answer, name, None) is not None), None)


def _bound(item: Any, url: str) -> Any:
    for extension in item.extension or []:
        if extension.url == url:
            for name in _BOUND_FIELDS:
                value = getattr(extension, name, None)
                if value is not None:
                    return value
    return None


def _comparable(value: Any, bound: Any) -> bool:
    numbers = (int, float, Decimal)
    if isinstance(bound, numbers) and not isinstance(bound, bool):
        return isinstance(value, numbers) and not isinstance(value, bool)
    if isinstance(bound, datetime):
        return isinstance(value, datetime)
    if isinstance(bound, date):
        return isinstance(value, date) and not isinstance(value, datetime)
    return isinstance(bound, time) and isinstance(value, time)


def _label(item: Any) -> str:
    text = " ".join((item.text or "").split())
    return f"item {item.linkId} ({text[:80]})" if text else f"item {item.linkId}"


def _answer_value(answer: Any, name: str) -> Any:
    if name == "valueQuantity":
        return answer.valueQuantity.value
    return getattr(answer, name)


def _bounds_issues(form_item: Any, answer: Any, name: str, where: str) -> Iterator[Issue]:
    value = _answer_value(answer, name)
    low, high = _bound(form_item, MIN_VALUE), _bound(form_item, MAX_VALUE)
    if low is not None and value is not None and _comparable(value, low) and value < low:
        yield Issue(
            where, f"{_label(form_item)}: {value} is below the minimum {low}", form_item.linkId
        )
    if high is not None and value is not None and _comparable(value, high) and value > high:
        yield Issue(
            where, f"{_label(form_item)}: {value} is above the maximum {high}", form_item.linkId
        )
    limit = form_item.maxLength
    if limit is not None and isinstance(value, str) and len(value) > limit:
        yield Issue(
            where,
            f"{_label(form_item)}: the answer has {len(value)} characters, at most {limit} allowed",
            form_item.linkId,
        )


def _option_matches(option: Any, answer: Any) -> bool:
    coding, mine = option.valueCoding, answer.valueCoding
    if coding is not None and mine is not None:
        return bool(coding.code == mine.code and (coding.system or None) == (mine.system or None))
    for name in ("valueString", "valueInteger", "valueDate", "valueTime"):
        expected = getattr(option, name, None)
        if expected is not None:
            return bool(getattr(answer, name, None) == expected)
    return False


def _strict_answer_issues(form_item: Any, answer: Any, name: str, where: str) -> Iterator[Issue]:
    allowed = ANSWER_TYPES.get(form_item.type)
    if allowed is None:
        yield Issue(
            where,
            f"{_label(form_item)} is a {form_item.type} and takes no answer",
            form_item.linkId,
        )
        return
    if name not in allowed:
        yield Issue(
            where,
            f"{_label(form_item)} is of type {form_item.type}: {name} is not allowed "
            f"({', '.join(sorted(allowed))})",
            form_item.linkId,
        )
        return
    options = form_item.answerOption or []
    free_text = form_item.type == "open-choice" and name == "valueString"
    if options and not free_text and not any(_option_matches(o, answer) for o in options):
        yield Issue(
            where,
            f"{_label(form_item)}: the answer is not one of its options",
            form_item.linkId,
        )


def _item_issues(found: _Located, form_item: Any | None, strict: bool) -> Iterator[Issue]:
    item = found.item
    if form_item is None:
        if strict:
            yield Issue(
                f"{found.path}.linkId",
                f"item {item.linkId} is not in the Questionnaire",
                item.linkId,
            )
        return
    answers = list(item.answer or [])
    if strict and len(answers) > 1 and not form_item.repeats:
        yield Issue(
            f"{found.path}.answer",
            f"{_label(form_item)} takes one answer, got {len(answers)}",
            item.linkId,
        )
    if not strict and not form_item.extension and form_item.maxLength is None:
        return  # no bounds, no length limit: nothing else to check on its answers
    for index, answer in enumerate(answers):
        name = _value_field(answer)
        if name is None:
            continue
        where = f"{found.path}.answer[{index}].{name}"
        yield from _bounds_issues(form_item, answer, name, where)
        if strict:
            yield from _strict_answer_issues(form_item, answer, name, where)


def _required_issues(
    form_items: Mapping[str, Any], answered: dict[str, list[Any]], form: FormIndex | None
) -> Iterator[Issue]:
    enabled = form.enabled_link_ids(answered) if form is not None else {}
    for link_id, form_item in form_items.items():
        if not form_item.required or form_item.type in {"group", "display"}:
            continue
        if not enabled.get(link_id, True) or answered.get(link_id):
            continue
        yield Issue("QuestionnaireResponse.item", f"{_label(form_item)} is required", link_id)


def check(
    qr: QuestionnaireResponse,
    questionnaire: Questionnaire | None,
    form: FormIndex | None = None,
    *,
    strict: bool = False,
) -> list[Issue]:
    """The constraints ``qr`` breaks (empty when none). ``form`` is the Questionnaire's
    index (``enableWhen``); without it every required item counts as enabled."""
    issues: list[Issue] = []
    completed = qr.status in _COMPLETED
    if completed and qr.subject is None:
        issues.append(
            Issue(
                "QuestionnaireResponse.subject",
                f"a {qr.status} QuestionnaireResponse must name its subject (the patient)",
            )
        )
    if questionnaire is None:
        return issues
    if form is not None:
        form_items = form.nodes  # built once per form
    else:
        form_items = {item.linkId: item for item, _ in walk_items(questionnaire.item)}
    required = strict and completed  # the answers by linkId are needed only then
    answered: dict[str, list[Any]] = {}
    for found in _located(qr.item, "QuestionnaireResponse"):
        if required and found.item.answer:
            answered.setdefault(found.item.linkId, []).extend(
                comparable(a) for a in found.item.answer
            )
        issues.extend(_item_issues(found, form_items.get(found.item.linkId), strict))
    if required:
        issues.extend(_required_issues(form_items, answered, form))
    return issues


def require(
    qr: QuestionnaireResponse,
    questionnaire: Questionnaire | None,
    form: FormIndex | None = None,
    *,
    strict: bool = False,
) -> None:
    """Raise ``NonConformant`` when ``check`` finds anything."""
    issues = check(qr, questionnaire, form, strict=strict)
    if issues:
        raise NonConformant(issues)
