"""A Questionnaire's items by linkId with their concept, and its ``enableWhen`` logic.

Built once per form (the bundled forms at start-up; others by the screen's cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire

from service.fhir.items import walk_items
from service.fhir.vocabulary import Vocabulary

_ENABLE_WHEN_VALUES = (
    "answerBoolean",
    "answerDecimal",
    "answerInteger",
    "answerDate",
    "answerDateTime",
    "answerTime",
    "answerString",
)


@dataclass(frozen=True)
class EnableCondition:
    question: str
    operator: str
    answer: Any


@dataclass(frozen=True)
class FormItem:
    link_id: str
    text: str
    concept: str | None
    parent: str | None
    enable_when: tuple[EnableCondition, ...] = ()
    enable_behavior: str = "all"


@dataclass(frozen=True)
class FormIndex:
    """A Questionnaire's items by linkId, with their concept."""

    items: Mapping[str, FormItem]
    has_logic: bool
    #: the Questionnaire's own item models by linkId (their declared constraints)
    nodes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, questionnaire: Questionnaire, vocabulary: Vocabulary) -> FormIndex:
        items: dict[str, FormItem] = {}
        nodes: dict[str, Any] = {}
        for item, parent in walk_items(questionnaire.item):
            nodes[item.linkId] = item
            concept = next(
                (
                    found
                    for coding in item.code or []
                    if (found := vocabulary.concept_of_item_code(coding.system, coding.code))
                ),
                None,
            )
            items[item.linkId] = FormItem(
                link_id=item.linkId,
                text=item.text or "",
                concept=concept,
                parent=parent.linkId if parent is not None else None,
                enable_when=tuple(
                    EnableCondition(ew.question, ew.operator, _enable_when_value(ew))
                    for ew in item.enableWhen or []
                ),
                enable_behavior=item.enableBehavior or "all",
            )
        has_logic = any(i.enable_when for i in items.values())
        return cls(items=items, has_logic=has_logic, nodes=nodes)

    def enabled_link_ids(self, values: Mapping[str, list[Any]]) -> dict[str, bool]:
        """linkId -> enabled, given the answers by linkId (``values``)."""
        enabled: dict[str, bool] = {}
        for link_id in self.items:
            self._is_enabled(link_id, values, enabled)
        return enabled

    def _is_enabled(
        self, link_id: str, values: Mapping[str, list[Any]], enabled: dict[str, bool]
    ) -> bool:
        """A method, not a closure: a closure that calls itself is a reference cycle, left
        for the garbage collector on every call."""
        if link_id in enabled:
            return enabled[link_id]
        enabled[link_id] = True  # cycle guard
        item = self.items[link_id]
        result = item.parent is None or self._is_enabled(item.parent, values, enabled)
        if result and item.enable_when:
            checks = (_holds(c, values) for c in item.enable_when)
            result = any(checks) if item.enable_behavior == "any" else all(checks)
        enabled[link_id] = result
        return result


def _enable_when_value(ew: Any) -> Any:
    for name in _ENABLE_WHEN_VALUES:
        value = getattr(ew, name, None)
        if value is not None:
            return float(value) if isinstance(value, Decimal) else value
    if ew.answerCoding is not None:
        return (ew.answerCoding.system, ew.answerCoding.code)
    if ew.answerQuantity is not None and ew.answerQuantity.value is not None:
        return float(ew.answerQuantity.value)
    return None


def _holds(condition: EnableCondition, values: Mapping[str, list[Any]]) -> bool:
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
