"""Differential test: the fast FHIR validation path against fhir.resources R4B, the reference.

On every QR of the corpus (``qr_corpus``: the other tests' QRs, then seeded
generated ones, then hypothesis' random edits):

* ``ResponseParser.parse`` (fast path, then fhir.resources when the fast path
  does not accept) gives the reference's verdict: the same model, attribute for
  attribute and class for class, or the same ``InvalidResource`` (message and
  element paths);
* the fast path alone never accepts what the reference refuses, and what it
  builds equals the reference's model;
* the fast path accepts every QR the reference accepts, except the oddities it
  leaves to the reference by design (``defers_by_design``).

``make test`` runs a small corpus (seconds). The full one, over 10,000 generated QRs:
``.venv/bin/pytest -m slow tests/unit/test_validation_equivalence.py``.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from service.cds.screen import Screener
from service.fhir import InvalidResource, ResponseParser, parse_questionnaire_response
from service.fhir.fast_validate import CompiledModel, NotCompilable
from service.knowledge import Knowledge
from tests.unit.qr_corpus import generated, known_qrs, valid_bases
from tests.unit.qr_edits import objects

SMALL_CORPUS = 400
FULL_CORPUS = 12_000
RESOURCE_KEYS = ("resourceType", "resource_type")

#: the served path (fast, then fhir.resources) and the reference (fhir.resources alone)
PARSER = ResponseParser()
REFERENCE = parse_questionnaire_response


def same(a: Any, b: Any, where: str = "") -> str | None:
    """Where two validated values differ (class, fields given, attributes), or None."""
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, BaseModel):
        if a.__pydantic_fields_set__ != b.__pydantic_fields_set__:
            return f"{where}: fields set {a.__pydantic_fields_set__} != {b.__pydantic_fields_set__}"
        if (a.__pydantic_extra__, a.__pydantic_private__) != (
            b.__pydantic_extra__,
            b.__pydantic_private__,
        ):
            return f"{where}: extra or private attributes differ"
        if a.__dict__.keys() != b.__dict__.keys():
            return f"{where}: attributes {sorted(a.__dict__)} != {sorted(b.__dict__)}"
        for key in a.__dict__:
            found = same(a.__dict__[key], b.__dict__[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} != {len(b)} entries"
        return next(
            (
                d
                for i, (x, y) in enumerate(zip(a, b, strict=True))
                if (d := same(x, y, f"{where}[{i}]"))
            ),
            None,
        )
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    if a != b or repr(a) != repr(b):
        return f"{where}: {a!r} != {b!r}"
    return None


def defers_by_design(qr: Any, required: frozenset[str]) -> bool:
    """What the fast path leaves to fhir.resources although fhir.resources may accept it:
    a ``resourceType``/``resource_type`` key on an element, an element given as a JSON
    string, a contained resource other than a Questionnaire, a required primitive absent
    or null beside its ``_field`` extension."""
    stack: list[tuple[Any, bool]] = [(qr, True)]
    while stack:
        node, is_resource = stack.pop()
        if isinstance(node, dict):
            if not is_resource and any(key in node for key in RESOURCE_KEYS):
                return True
            if any(node.get(name) is None and f"_{name}" in node for name in required):
                return True
            if is_resource and "resource_type" in node:
                return True
            for key, value in node.items():
                if key == "contained" and isinstance(value, list):
                    for resource in value:
                        if not (
                            isinstance(resource, dict)
                            and resource.get("resourceType") == "Questionnaire"
                        ):
                            return True
                        stack.append((resource, True))
                else:
                    stack.append((value, False))
        elif isinstance(node, list):
            stack.extend((value, False) for value in node)
        elif isinstance(node, str) and node.lstrip().startswith(("{", "[", '"')):
            return True
    return False


def _outcome(parse: Any, qr: Any) -> tuple[str, Any]:
    try:
        return "accepted", parse(qr)
    except InvalidResource as exc:
        return "rejected", (exc.message, exc.expression)


def differences(name: str, qr: Any, compiled: CompiledModel, tally: Counter[str]) -> list[str]:
    """What differs between the paths on this QR (empty when they agree)."""
    reference = _outcome(REFERENCE, qr)
    served = _outcome(PARSER.parse, qr)
    fast = compiled.validate(qr) if isinstance(qr, dict) else None
    tally[reference[0]] += 1
    problems = []
    if served[0] != reference[0]:
        problems.append(f"{name}: verdict {served[0]}, reference {reference[0]}: {reference[1]}")
    elif served[0] == "rejected" and served[1] != reference[1]:
        problems.append(f"{name}: rejection {served[1]} != reference {reference[1]}")
    elif served[0] == "accepted" and (diff := same(served[1], reference[1], "QR")):
        problems.append(f"{name}: served model differs at {diff}")
    if fast is not None:
        tally["fast path accepted"] += 1
        if reference[0] != "accepted":
            problems.append(
                f"{name}: fast path accepted what the reference refuses: {reference[1]}"
            )
        elif diff := same(fast, reference[1], "QR"):
            problems.append(f"{name}: fast model differs at {diff}")
    elif reference[0] == "accepted":
        tally["deferred to the reference"] += 1
        if not defers_by_design(qr, compiled.required_elements):
            problems.append(f"{name}: fast path did not accept a valid QR")
    return problems


@pytest.fixture(scope="module")
def compiled() -> CompiledModel:
    model = PARSER.compiled
    assert model is not None, "the fast path did not compile"
    return model


def run_corpus(cases: Iterable[tuple[str, Any]], compiled: CompiledModel) -> Counter[str]:
    tally: Counter[str] = Counter()
    problems = [p for name, qr in cases for p in differences(name, qr, compiled, tally)]
    assert not problems, f"{len(problems)} differences, first ones:\n" + "\n".join(problems[:15])
    return tally


def test_every_qr_of_the_other_tests(compiled: CompiledModel) -> None:
    cases = known_qrs()
    tally = run_corpus(cases, compiled)
    assert len(cases) >= 60
    assert tally["accepted"] >= 40 and tally["rejected"] >= 10, tally


def _generated(count: int) -> Iterable[tuple[str, Any]]:
    bases = valid_bases()
    return (generated(seed, bases) for seed in range(count))


def test_generated_qrs_small_corpus(compiled: CompiledModel) -> None:
    tally = run_corpus(_generated(SMALL_CORPUS), compiled)
    # the corpus must exercise both verdicts, and the fast path must carry the valid ones
    assert tally["accepted"] > SMALL_CORPUS / 4 and tally["rejected"] > SMALL_CORPUS / 4, tally
    assert tally["fast path accepted"] > 0.8 * tally["accepted"], tally


@pytest.mark.slow
def test_generated_qrs_full_corpus(compiled: CompiledModel) -> None:
    tally = run_corpus(_generated(FULL_CORPUS), compiled)
    print(f"\n{FULL_CORPUS} generated QRs: {dict(tally)}")
    assert tally["accepted"] > FULL_CORPUS / 4 and tally["rejected"] > FULL_CORPUS / 4, tally


# -- hypothesis: any JSON value anywhere --------------------------------------------------------

JSON_KEYS = ["linkId", "text", "answer", "item", "valueCoding", "valueString", "code", "system"]
JSON_KEYS += ["extension", "url", "valueBoolean", "id", "x"]
SCALARS = ["2024-01-01", "LA33-6", "http://loinc.org", "a b", "23:59:60", "1.50"]


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(JSON_KEYS), inner, max_size=3
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(SCALARS),
    _containers,
    max_leaves=8,
)


def _places(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) of a JSON document."""
    found: list[tuple[Any, Any]] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            found.extend((current, key) for key in current)
            stack.extend(current.values())
        elif isinstance(current, list):
            found.extend((current, index) for index in range(len(current)))
            stack.extend(current)
    return found


@st.composite
def edited_qrs(draw: st.DrawFn) -> dict[str, Any]:
    qr = copy.deepcopy(draw(st.sampled_from(valid_bases())))
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(_places(qr)))
        if isinstance(container, dict) and draw(st.booleans()):
            key = draw(
                st.sampled_from(
                    ["valueString", "valueDate", "_linkId", "item", "answer", "status", "linkId"]
                )
            )
        container[key] = draw(json_values)
    return qr


def _hypothesis_check(qr: dict[str, Any]) -> None:
    compiled = PARSER.compiled
    assert compiled is not None
    problems = differences("hypothesis", qr, compiled, Counter())
    assert not problems, problems


@settings(
    max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
@given(edited_qrs())
def test_random_json_anywhere(qr: dict[str, Any]) -> None:
    _hypothesis_check(qr)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(edited_qrs())
def test_random_json_anywhere_full(qr: dict[str, Any]) -> None:
    _hypothesis_check(qr)


# -- the path itself -------------------------------------------------------------------------


def test_valid_qr_is_decided_without_fhir_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    qr = valid_bases()[1]  # contained form, nested groups
    expected = REFERENCE(qr)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fhir.resources was called")

    monkeypatch.setattr(QuestionnaireResponse, "model_validate", refuse)
    parsed = PARSER.parse(qr)
    assert same(parsed, expected) is None
    assert isinstance(parsed.contained[0], Questionnaire)


def test_invalid_qr_is_worded_by_fhir_resources() -> None:
    qr = copy.deepcopy(valid_bases()[0])
    qr["item"][0]["item"][0]["answer"] = [{"valueDate": "2024-02-30"}]
    with pytest.raises(InvalidResource) as info:
        PARSER.parse(qr)
    assert info.value.expression == ("QuestionnaireResponse.item[0].item[0].answer[0].valueDate",)
    assert "day value is outside expected range" in info.value.message


def test_unknown_contained_resource_type_is_invalid_not_a_crash() -> None:
    qr = {**valid_bases()[0], "contained": [{"resourceType": "NoSuchResource", "id": "x"}]}
    with pytest.raises(InvalidResource) as info:
        PARSER.parse(qr)
    assert info.value.expression == ("QuestionnaireResponse.contained",)


def test_a_model_that_is_not_fhir_is_not_compiled() -> None:
    class Plain(BaseModel):
        x: int = 0

    with pytest.raises(NotCompilable):
        CompiledModel(Plain)  # type: ignore[arg-type]


def test_primitive_extension_given_as_a_json_number_string_is_invalid_not_a_crash() -> None:
    # fhir.resources parses a string given for an element as JSON; "12.0" becomes a float
    # that its FHIRPrimitiveExtension validator calls .get on (AttributeError)
    qr = copy.deepcopy(valid_bases()[0])
    qr["item"][0]["_linkId"] = "12.0"
    with pytest.raises(InvalidResource) as info:
        PARSER.parse(qr)
    assert info.value.expression == ("QuestionnaireResponse",)


def test_a_required_choice_given_as_null_is_refused_by_the_fast_path() -> None:
    # found by the full corpus (seed 7695): answerOption.value[x] is required; a key
    # present with null is no value at all
    qr = copy.deepcopy(valid_bases()[1])
    options = [o for _, o in objects(qr["contained"][0]) if "valueCoding" in o and "id" not in o]
    options[0].clear()
    options[0]["valueCoding"] = None
    compiled = PARSER.compiled
    assert compiled is not None
    assert compiled.validate(qr) is None
    with pytest.raises(InvalidResource, match="Expect any of field value"):
        PARSER.parse(qr)


def test_the_screener_builds_the_fast_path_before_the_first_call(knowledge: Knowledge) -> None:
    assert Screener(knowledge).parser.compiled is not None
