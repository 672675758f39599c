"""Valid variations of a QuestionnaireResponse, and where in a QR to make an edit.

Each edit takes a seeded ``random.Random`` and changes the QR in place; the
corpus (``qr_corpus.generated``) applies them reproducibly.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from typing import Any

from testkit.casekit import intake

LOCAL = "https://fhir.backpain-cds.dev/CodeSystem/backpain-cds"
LOINC = "http://loinc.org"

Json = Any
Edit = Callable[[random.Random, dict[str, Any]], None]


# -- where to edit ---------------------------------------------------------------------------


def objects(node: Json, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    stack = [(path, node)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            yield where, value
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def pick(rng: random.Random, qr: dict[str, Any]) -> dict[str, Any]:
    """A random object of the QR (the QR itself, an item, an answer, a coding...)."""
    return rng.choice([obj for _, obj in objects(qr)])


def _of_response(qr: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The QR's own objects named ``name`` (``item``, ``answer``), not its contained form's."""
    return [
        obj
        for where, obj in objects(qr)
        if where.split(".")[-1].startswith(f"{name}[") and not where.startswith(".contained")
    ]


def _items(qr: dict[str, Any]) -> list[dict[str, Any]]:
    return _of_response(qr, "item")


def _answers(qr: dict[str, Any]) -> list[dict[str, Any]]:
    return _of_response(qr, "answer")


def any_item(rng: random.Random, qr: dict[str, Any]) -> dict[str, Any]:
    items = _items(qr)
    if not items:
        qr["item"] = [{"linkId": "new"}]
        return qr["item"][0]
    return rng.choice(items)


def any_answer(rng: random.Random, qr: dict[str, Any]) -> dict[str, Any]:
    answers = _answers(qr)
    if not answers:
        item = any_item(rng, qr)
        item["answer"] = [{"valueString": "x"}]
        return item["answer"][0]
    return rng.choice(answers)


# -- valid variations ------------------------------------------------------------------------

VALID_ANSWERS: list[dict[str, Any]] = [
    {"valueBoolean": True},
    {"valueBoolean": False},
    {"valueDecimal": 1.5},
    {"valueDecimal": -0.0},
    {"valueDecimal": 1e3},
    {"valueDecimal": 7},
    {"valueInteger": 0},
    {"valueInteger": 2147483647},
    {"valueInteger": -2147483648},
    {"valueDate": "2024"},
    {"valueDate": "2024-02"},
    {"valueDate": "2024-02-29"},
    {"valueDateTime": "2024-01-01T10:00:00+02:00"},
    {"valueDateTime": "2015-02-07T13:28:17.239+02:00"},
    {"valueDateTime": "2016-12-31T23:59:60Z"},
    {"valueDateTime": "2024-05"},
    {"valueTime": "23:59:59"},
    {"valueTime": "08:30:00.5"},
    {"valueString": "Ça fait mal 😀 — naïve"},
    {"valueString": "line one\nline two\ttab"},
    {"valueUri": "urn:uuid:6f4a0a7e-6a1e-4c1b-9f3b-0a1b2c3d4e5f"},
    {"valueUri": "http://example.org/x?y=1#z"},
    {
        "valueQuantity": {
            "value": 3,
            "unit": "h",
            "system": "http://unitsofmeasure.org",
            "code": "h",
        }
    },
    {"valueQuantity": {"value": 2.5, "comparator": "<", "unit": "days"}},
    {"valueReference": {"reference": "Patient/x", "display": "X"}},
    {"valueReference": {"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"}}},
    {"valueAttachment": {"contentType": "text/plain", "data": "aGVsbG8=", "title": "note"}},
    {"valueCoding": {"system": LOCAL, "code": "fever"}},
    {"valueCoding": {"system": LOINC, "code": "LA33-6", "display": "Yes", "userSelected": True}},
    {"valueCoding": {"code": "with single spaces"}},
    {},
]


def _add_answer(rng: random.Random, qr: dict[str, Any]) -> None:
    item = any_item(rng, qr)
    item.setdefault("answer", []).append(copy.deepcopy(rng.choice(VALID_ANSWERS)))


def _answer_with_items(rng: random.Random, qr: dict[str, Any]) -> None:
    answer = any_answer(rng, qr)
    nested = {
        "linkId": f"n{rng.randrange(100)}",
        "answer": [copy.deepcopy(rng.choice(VALID_ANSWERS))],
    }
    answer["item"] = [nested, {"linkId": "n-empty", "text": "no answer"}]


def _primitive_extension(rng: random.Random, qr: dict[str, Any]) -> None:
    item = any_item(rng, qr)
    key = rng.choice(["_linkId", "_text", "_definition"])
    item[key] = {"extension": [{"url": "http://example.org/why", "valueString": "because"}]}
    if key == "_linkId" and rng.random() < 0.5:
        item.pop("linkId", None)  # a required primitive given only by its extension


def _element_extension(rng: random.Random, qr: dict[str, Any]) -> None:
    target = rng.choice([qr, any_item(rng, qr), any_answer(rng, qr)])
    value = rng.choice(VALID_ANSWERS[:-1])
    target.setdefault("extension", []).append(
        {"url": "http://example.org/ext", **copy.deepcopy(value)}
    )


def _resource_fields(rng: random.Random, qr: dict[str, Any]) -> None:
    extra: dict[str, Any] = rng.choice(
        [
            {
                "meta": {
                    "versionId": "2",
                    "lastUpdated": "2024-01-01T00:00:00Z",
                    "tag": [{"code": "t"}],
                }
            },
            {
                "meta": {
                    "profile": ["http://example.org/p1", None, "http://example.org/p3"],
                    "_profile": [
                        None,
                        {"extension": [{"url": "http://x", "valueCode": "gone"}]},
                        None,
                    ],
                }
            },  # a primitive list, nulls lined up with _profile
            {
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
                }
            },
            {"identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}},
            {
                "basedOn": [{"reference": "ServiceRequest/1"}],
                "partOf": [{"reference": "Procedure/2"}],
            },
            {"encounter": {"reference": "Encounter/1"}, "author": {"reference": "Practitioner/1"}},
            {"source": {"reference": "Patient/example"}, "language": "en-GB"},
            {"implicitRules": "http://example.org/rules", "fhir_comments": ["a comment"]},
            {"status": rng.choice(["in-progress", "amended", "entered-in-error", "stopped"])},
            {"authored": rng.choice(["2024", "2024-02-29", "2016-12-31T23:59:60+01:00"])},
        ]
    )
    qr.update(copy.deepcopy(extra))


def _contained_form(rng: random.Random, qr: dict[str, Any]) -> None:
    form = intake()
    form["id"] = "inline"
    qr["contained"] = [form] + (
        [
            {
                "resourceType": "Questionnaire",
                "id": "small",
                "status": "draft",
                "item": [
                    {
                        "linkId": "x",
                        "type": "boolean",
                        "enableWhen": [
                            {"question": "y", "operator": "exists", "answerBoolean": True}
                        ],
                    }
                ],
            }
        ]
        if rng.random() < 0.5
        else []
    )
    qr["questionnaire"] = "#inline"


def _drop_optional(rng: random.Random, qr: dict[str, Any]) -> None:
    for key in rng.sample(["id", "authored", "subject", "questionnaire", "item"], 2):
        qr.pop(key, None)


def _repeat_items(rng: random.Random, qr: dict[str, Any]) -> None:
    items = qr.get("item")
    if isinstance(items, list) and items:
        items.extend(copy.deepcopy(rng.sample(items, min(len(items), 3))))


VALID_EDITS: tuple[Edit, ...] = (
    _add_answer,
    _answer_with_items,
    _primitive_extension,
    _element_extension,
    _resource_fields,
    _contained_form,
    _drop_optional,
    _repeat_items,
)
