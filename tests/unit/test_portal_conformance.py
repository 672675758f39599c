"""A QuestionnaireResponse checked against its Questionnaire (service/fhir/conformance).

Bounds and a completed response's subject are refused on every hook; the
portal's strict mode also checks types, options and required answers.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service.cds.errors import QuestionnaireResponseInvalid
from service.cds.hook import HookHandler
from service.cds.screen import Screener
from service.fhir import FormIndex, parse_questionnaire, parse_questionnaire_response
from service.fhir.conformance import NonConformant, check
from service.knowledge import Knowledge
from testkit.casekit import build_qr, intake

INTAKE = "backpain-redflags-intake"


class NoFhir:
    def search(self, base: str, query: str, token: str | None) -> dict[str, Any]:
        raise RuntimeError("no FHIR server in this test")

    def questionnaire(self, base: str, canonical: str, token: str | None) -> None:
        return None


class NoServers:
    def allows(self, iss: str | None, url: str) -> bool:
        return False


def hook_request(qr: dict[str, Any]) -> dict[str, Any]:
    return {
        "hook": "questionnaire-inprogress",
        "hookInstance": "conformance-test",
        "context": {"questionnaireResponse": qr},
    }


def answer_of(qr: dict[str, Any], link_id: str) -> dict[str, Any]:
    for group in qr["item"]:
        for item in group.get("item", []):
            if item["linkId"] == link_id:
                answer: dict[str, Any] = item["answer"][0]
                return answer
    raise KeyError(link_id)


@pytest.fixture(scope="module")
def handler(knowledge: Knowledge) -> HookHandler:
    return HookHandler(Screener(knowledge), NoFhir(), NoServers())


def test_hook_refuses_pain_above_its_maximum_naming_the_item(handler: HookHandler) -> None:
    qr = build_qr({"id": "pain-11", "answers": {"pain-severity": 11}})
    service = handler.services[INTAKE]
    with pytest.raises(QuestionnaireResponseInvalid) as refused:
        handler.handle(service, hook_request(qr))
    assert "item 1.3" in str(refused.value)
    assert "above the maximum 10" in str(refused.value)
    assert refused.value.expression == (
        "QuestionnaireResponse.item[0].item[2].answer[0].valueInteger",
    )


def test_hook_refuses_pain_below_its_minimum(handler: HookHandler) -> None:
    qr = build_qr({"id": "pain-neg", "answers": {"pain-severity": -1}})
    with pytest.raises(QuestionnaireResponseInvalid, match="below the minimum 0"):
        handler.handle(handler.services[INTAKE], hook_request(qr))


def test_hook_screens_pain_on_the_bounds(handler: HookHandler) -> None:
    for value in (0, 10):
        qr = build_qr({"id": f"pain-{value}", "answers": {"pain-severity": value}})
        result = handler.handle(handler.services[INTAKE], hook_request(qr))
        assert result.response["cards"]


def test_completed_response_without_subject_is_refused(handler: HookHandler) -> None:
    qr = build_qr({"id": "no-subject"})
    del qr["subject"]
    with pytest.raises(QuestionnaireResponseInvalid) as refused:
        handler.handle(handler.services[INTAKE], hook_request(qr))
    assert refused.value.expression == ("QuestionnaireResponse.subject",)


def test_in_progress_response_without_subject_is_screened(handler: HookHandler) -> None:
    qr = build_qr({"id": "draft", "answers": {"bladder-dysfunction-new": "yes"}})
    del qr["subject"]
    qr["status"] = "in-progress"
    result = handler.handle(handler.services[INTAKE], hook_request(qr))
    assert result.response["cards"][0]["indicator"] == "critical"


def _checked(qr: dict[str, Any], *, strict: bool, form: dict[str, Any] | None = None) -> list[str]:
    questionnaire = parse_questionnaire(form or intake())
    return [
        issue.message
        for issue in check(parse_questionnaire_response(qr), questionnaire, strict=strict)
    ]


def test_lenient_mode_keeps_the_tolerances_the_rules_define() -> None:
    """SNOMED-coded Yes, a boolean for a yes/no choice, a skipped question: read, not refused."""
    for spec in (
        {"id": "snomed", "style": "snomed"},
        {"id": "boolean", "style": "boolean"},
        {"id": "skipped", "answers": {"fever": "omit"}},
        {"id": "maybe", "answers": {"saddle-anaesthesia": {"valueString": "maybe"}}},
    ):
        assert _checked(build_qr(spec), strict=False) == [], spec["id"]


def test_strict_mode_names_type_option_and_required_problems() -> None:
    assert any(
        "not one of its options" in m
        for m in _checked(build_qr({"id": "s", "style": "snomed"}), strict=True)
    )
    assert any(
        "valueBoolean is not allowed" in m
        for m in _checked(build_qr({"id": "b", "style": "boolean"}), strict=True)
    )
    skipped = _checked(build_qr({"id": "f", "answers": {"fever": "omit"}}), strict=True)
    assert skipped == [
        "item 4.1 (Have you had fever, chills or sweats along with the pain?) is required"
    ]


def test_strict_mode_passes_a_full_answer_from_the_form() -> None:
    assert _checked(build_qr({"id": "full"}), strict=True) == []


def test_required_is_checked_only_once_completed() -> None:
    qr = build_qr({"id": "half", "defaults": False, "answers": {"exercise-type": "impact"}})
    qr["status"] = "in-progress"
    assert _checked(qr, strict=True) == []
    qr["status"] = "completed"
    assert len(_checked(qr, strict=True)) == 21


def test_strict_mode_refuses_unknown_items_and_repeated_answers() -> None:
    qr = build_qr({"id": "odd", "answers": {"fever": ["no", "yes"]}})
    qr["item"].append({"linkId": "99", "answer": [{"valueString": "extra"}]})
    messages = _checked(qr, strict=True)
    assert any("takes one answer, got 2" in m for m in messages)
    assert "item 99 is not in the Questionnaire" in messages


def test_a_string_on_an_integer_item_is_a_type_error_in_strict_mode() -> None:
    qr = build_qr({"id": "str", "answers": {"hours-since-onset": {"valueString": "a while"}}})
    assert _checked(qr, strict=False) == []
    assert any("valueString is not allowed" in m for m in _checked(qr, strict=True))


def _small_form() -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "status": "active",
        "url": "https://example.org/Questionnaire/small",
        "item": [
            {"linkId": "a", "type": "boolean", "text": "Any pain?", "required": True},
            {
                "linkId": "b",
                "type": "string",
                "text": "Where?",
                "required": True,
                "maxLength": 5,
                "enableWhen": [{"question": "a", "operator": "=", "answerBoolean": True}],
            },
            {
                "linkId": "c",
                "type": "decimal",
                "text": "Temperature",
                "extension": [
                    {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueDecimal": 35},
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/maxValue",
                        "valueDecimal": 43.5,
                    },
                ],
            },
        ],
    }


def _small_qr(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"display": "A patient"},
        "questionnaire": "https://example.org/Questionnaire/small",
        "item": list(items),
    }


def test_max_length_and_decimal_bounds(knowledge: Knowledge) -> None:
    form = _small_form()
    qr = _small_qr(
        {"linkId": "a", "answer": [{"valueBoolean": True}]},
        {"linkId": "b", "answer": [{"valueString": "lower back"}]},
        {"linkId": "c", "answer": [{"valueDecimal": 43.6}]},
    )
    messages = _checked(qr, strict=False, form=form)
    assert messages == [
        "item b (Where?): the answer has 10 characters, at most 5 allowed",
        "item c (Temperature): 43.6 is above the maximum 43.5",
    ]


def test_a_required_item_disabled_by_enable_when_is_not_required(knowledge: Knowledge) -> None:
    form = _small_form()
    questionnaire = parse_questionnaire(form)
    index = FormIndex.build(questionnaire, knowledge.vocabulary)
    answered_no = _small_qr({"linkId": "a", "answer": [{"valueBoolean": False}]})
    parsed = parse_questionnaire_response(answered_no)
    assert check(parsed, questionnaire, index, strict=True) == []
    answered_yes = copy.deepcopy(answered_no)
    answered_yes["item"][0]["answer"][0]["valueBoolean"] = True
    issues = check(parse_questionnaire_response(answered_yes), questionnaire, index, strict=True)
    assert [issue.link_id for issue in issues] == ["b"]


def test_non_conformant_lists_every_issue_and_their_places() -> None:
    qr = build_qr({"id": "many", "answers": {"pain-severity": 12, "hours-since-onset": 5}})
    del qr["subject"]
    issues = check(parse_questionnaire_response(qr), parse_questionnaire(intake()))
    refusal = NonConformant(issues)
    assert refusal.expression == (
        "QuestionnaireResponse.subject",
        "QuestionnaireResponse.item[0].item[2].answer[0].valueInteger",
    )
    assert answer_of(qr, "1.3") == {"valueInteger": 12}
