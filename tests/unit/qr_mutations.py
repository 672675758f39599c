"""Mutations of a QuestionnaireResponse: most make it invalid, some are legal oddities.

Each takes a seeded ``random.Random`` and changes the QR in place; ``MUTATIONS``
names them, and the corpus reports the name with each generated QR.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from tests.unit.qr_edits import (
    LOINC,
    VALID_ANSWERS,
    Edit,
    Json,
    any_answer,
    any_item,
    pick,
)

# -- mutations (most make the QR invalid; some are legal oddities) ---------------------------

ODD_VALUES: list[Json] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**31,
    -(2**31) - 1,
    10**30,
    1e308,
    float("inf"),
    float("nan"),
    "",
    " ",
    "x",
    "true",
    "yes",
    "12",
    "12.0",
    "1e3",
    "2024-13-01",
    "\u0000",
    "\ud800",
    "a\u00a0b",
    "\ufeff",
    [],
    [None],
    [1],
    {},
    {"x": 1},
    '{"code": "a"}',
]
BAD_DATES = [
    "2024-13-01",
    "2024-02-30",
    "24-01-01",
    "2024-1-1",
    "2024/01/01",
    "yesterday",
    "2024-01-01T25:00:00Z",
    "2024-01-01T10:00",
    "2024-01-01T10:00:00",
    "20240101",
    "2024-01-01 10:00:00Z",
    " 2024",
    "2024-01-01T10:00:00+2:00",
    "10000",
]
BAD_CODES = [" a", "a ", "a  b", "a\tb", "a\nb", "", "\u00a0", "a\u2003b"]


def _wrong_type(rng: random.Random, qr: dict[str, Any]) -> None:
    target = pick(rng, qr)
    if target:
        target[rng.choice(sorted(target))] = copy.deepcopy(rng.choice(ODD_VALUES))


def _null_value(rng: random.Random, qr: dict[str, Any]) -> None:
    """Any key of any object (the contained form's included) set to null."""
    target = pick(rng, qr)
    if target:
        target[rng.choice(sorted(target))] = None


def _bad_date(rng: random.Random, qr: dict[str, Any]) -> None:
    value = rng.choice(BAD_DATES)
    target, key = rng.choice(
        [
            (qr, "authored"),
            (any_answer(rng, qr), "valueDate"),
            (any_answer(rng, qr), "valueDateTime"),
            (any_answer(rng, qr), "valueTime"),
        ]
    )
    if key.startswith("value"):
        for other in [k for k in target if k.startswith("value")]:
            del target[other]
    target[key] = value


def _bad_code(rng: random.Random, qr: dict[str, Any]) -> None:
    code = rng.choice(BAD_CODES)
    if rng.random() < 0.5:
        qr["status"] = code
    else:
        answer = any_answer(rng, qr)
        answer.clear()
        answer["valueCoding"] = {"system": LOINC, "code": code}


def _empty_string(rng: random.Random, qr: dict[str, Any]) -> None:
    target = rng.choice([qr, any_item(rng, qr), any_answer(rng, qr)])
    strings = [k for k, v in target.items() if isinstance(v, str)] or ["text"]
    target[rng.choice(strings)] = rng.choice(["", " ", "\n"])


def _extra_field(rng: random.Random, qr: dict[str, Any]) -> None:
    target = pick(rng, qr)
    key = rng.choice(
        [
            "foo",
            "_foo",
            "Value",
            "linkid",
            "valueFoo",
            "resource_type",
            "resourceType",
            "fhir_comments",
            "value",
            "_",
            "status__ext",
            "linkId__ext",
        ]
    )
    target[key] = copy.deepcopy(rng.choice(ODD_VALUES[:20]))


def _collision(rng: random.Random, qr: dict[str, Any]) -> None:
    answer = any_answer(rng, qr)
    for extra in rng.sample(VALID_ANSWERS[:-1], 2):
        answer.update(copy.deepcopy(extra))


def _nulls(rng: random.Random, qr: dict[str, Any]) -> None:
    target = rng.choice([qr, any_item(rng, qr), any_answer(rng, qr)])
    lists = [k for k, v in target.items() if isinstance(v, list)] or ["item"]
    key = rng.choice(lists)
    target.setdefault(key, [])
    if not isinstance(target[key], list):
        target[key] = []
    target[key].insert(rng.randrange(len(target[key]) + 1), rng.choice([None, {}, []]))


def _required_missing(rng: random.Random, qr: dict[str, Any]) -> None:
    choice = rng.random()
    if choice < 0.4:
        qr.pop("status", None)
        if rng.random() < 0.5:
            qr["_status"] = rng.choice(
                [
                    {"extension": []},
                    {"id": "x"},
                    {},
                    None,
                    {"extension": [{"url": "x", "valueCode": "unknown"}]},
                ]
            )
    elif choice < 0.8:
        any_item(rng, qr).pop("linkId", None)
    else:
        target = any_answer(rng, qr)
        target["extension"] = [{"valueString": "no url"}]


def _numbers(rng: random.Random, qr: dict[str, Any]) -> None:
    answer = any_answer(rng, qr)
    answer.clear()
    key = rng.choice(["valueInteger", "valueDecimal", "valueQuantity"])
    number = rng.choice(
        [
            2**31,
            2**31 - 1,
            -(2**31),
            10**400,
            1e308,
            -1e-320,
            0.1 + 0.2,
            True,
            12.0,
            12.5,
            "12",
            "1.50",
            float("inf"),
            float("-inf"),
        ]
    )
    answer[key] = {"value": number} if key == "valueQuantity" else number


def _text_oddities(rng: random.Random, qr: dict[str, Any]) -> None:
    item = any_item(rng, qr)
    item[rng.choice(["text", "linkId", "definition"])] = rng.choice(
        [
            "\u0000",
            "\u0007bell",
            "\ud83d",
            "\U0001f600" * 50,
            "x" * 5000,
            "\u202eevil",
            "\ufeff",
            "tab\tonly",
            "\r\n",
            "a b",
            "✓",
        ]
    )


def _contained_other(rng: random.Random, qr: dict[str, Any]) -> None:
    qr["contained"] = [
        copy.deepcopy(
            rng.choice(
                [
                    {"resourceType": "Patient", "id": "p"},
                    {"resourceType": "Questionnaire", "id": "q"},
                    {
                        "resourceType": "Questionnaire",
                        "status": "active",
                        "item": [{"linkId": "1"}],
                    },
                    {"resourceType": "Questionnaire", "status": "bogus value"},
                    {"resourceType": "Nope"},
                    {"resourceType": 7},
                    {"id": "no-type"},
                    {"resourceType": "QuestionnaireResponse", "status": "completed"},
                    "Questionnaire/1",
                ]
            )
        )
    ]


def _nested_under_answer(rng: random.Random, qr: dict[str, Any]) -> None:
    answer = any_answer(rng, qr)
    answer["item"] = rng.choice(
        [
            [{"answer": [{}]}],
            [{"linkId": "z", "item": [None]}],
            {"linkId": "z"},
            [{"linkId": "z", "answer": [{"item": [{"linkId": ""}]}]}],
        ]
    )


def _json_string_element(rng: random.Random, qr: dict[str, Any]) -> None:
    answer = any_answer(rng, qr)
    answer.clear()
    answer["valueCoding"] = json.dumps({"system": LOINC, "code": "LA33-6"})


def _lax_primitives(rng: random.Random, qr: dict[str, Any]) -> None:
    answer = any_answer(rng, qr)
    answer.clear()
    answer.update(
        rng.choice(
            [
                {"valueBoolean": "yes"},
                {"valueBoolean": "off"},
                {"valueBoolean": 1},
                {"valueBoolean": "TRUE"},
                {"valueInteger": "7"},
                {"valueInteger": 7.0},
                {"valueDecimal": "7.25"},
                {"valueString": 7},
                {"valueDate": 2024},
            ]
        )
    )


MUTATIONS: dict[str, Edit] = {
    "wrong-type": _wrong_type,
    "null-value": _null_value,
    "bad-date": _bad_date,
    "bad-code": _bad_code,
    "empty-string": _empty_string,
    "extra-field": _extra_field,
    "value[x]-collision": _collision,
    "nulls-and-empties": _nulls,
    "required-missing": _required_missing,
    "numbers": _numbers,
    "text-oddities": _text_oddities,
    "contained-other": _contained_other,
    "nested-under-answer": _nested_under_answer,
    "json-string-element": _json_string_element,
    "lax-primitives": _lax_primitives,
}
