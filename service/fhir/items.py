"""The one walk over FHIR items, for JSON and for fhir.resources models alike.

Questionnaire items nest under ``item``; QuestionnaireResponse items nest under
``item`` and under each ``answer[].item``. The walk is depth-first in document
order, iterative (no recursion limit to hit), and tolerant of hostile JSON:
anything that is not an object or a list is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def _field(node: Any, name: str) -> Any:
    if type(node) is dict:  # JSON: the common case first, no abstract-class check
        return node.get(name)
    if isinstance(node, Mapping):
        return node.get(name)
    fields = getattr(node, "__dict__", None)  # a model's fields, without __getattr__'s miss
    if fields is not None:
        return fields.get(name)
    return getattr(node, name, None)


def _children(node: Any) -> list[Any]:
    nested: list[Any] = []
    items = _field(node, "item")
    if isinstance(items, list):
        nested.extend(items)
    answers = _field(node, "answer")
    if isinstance(answers, list):
        for answer in answers:
            under = _field(answer, "item")
            if isinstance(under, list):
                nested.extend(under)
    return nested


def _is_item(node: Any) -> bool:
    if type(node) is dict:
        return True
    return isinstance(node, Mapping) or (node is not None and hasattr(node, "linkId"))


def walk_items(items: Iterable[Any] | None) -> Iterator[tuple[Any, Any | None]]:
    """Every item under ``items`` with its parent item (None at the top), in document order."""
    stack: list[tuple[Any, Any | None]] = [(item, None) for item in reversed(list(items or []))]
    while stack:
        item, parent = stack.pop()
        if not _is_item(item):
            continue
        yield item, parent
        stack.extend((child, item) for child in reversed(_children(item)))


def link_id(item: Any) -> Any:
    return _field(item, "linkId")
