"""Every clinical vignette in tests/cases/*.yaml, through service.cds.screen.screen."""

from __future__ import annotations

import pytest

from service.cds.screen import screen
from service.knowledge import Knowledge
from testkit.casekit import Case, indicators_of, load_cases, topics_of

CASES = load_cases()
CES = (
    "bladder-dysfunction-new",
    "bowel-incontinence-new",
    "saddle-anaesthesia",
    "sexual-dysfunction-new",
    "leg-symptoms-bilateral",
)
CARD_TOPICS = {
    "cauda-equina",
    "progressive-neurological-deficit",
    "sciatica",
    "neurological",
    "systemic",
    "fracture",
    "persistence",
    "screen-incomplete",
    "immediate-steps",
    "technique",
    "stabilisation",
}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, knowledge: Knowledge) -> None:
    result = screen(case.qr, knowledge, hook_instance="11111111-2222-4333-8444-555555555555")
    cards = result.evaluation.cards
    assert (topics_of(cards), indicators_of(cards)) == (
        case.expected_topics,
        case.expected_indicators,
    ), case.description
    _assert_principles(cards)


def _assert_principles(cards: tuple[dict, ...]) -> None:
    ranks = {"critical": 0, "warning": 1, "info": 2}
    order = [ranks[c["indicator"]] for c in cards]
    assert order == sorted(order), "most urgent first"
    topics = topics_of(cards)
    assert len(topics) == len(set(topics)), "one card per family"
    assert cards, "never silence"
    if any(c["indicator"] != "info" for c in cards):
        assert not {"immediate-steps", "technique", "stabilisation"} & set(topics)
    for card in cards:
        assert len(card["summary"]) < 140
        assert "Rule `" in card["detail"]
        if card["indicator"] != "info":
            assert card["overrideReasons"]


def test_there_are_enough_vignettes() -> None:
    assert len(CASES) >= 60
    assert len({c.family_file for c in CASES}) >= 8


def test_every_card_is_covered_by_a_vignette() -> None:
    assert {t for c in CASES for t in c.expected_topics} == CARD_TOPICS


@pytest.mark.parametrize("concept", CES)
@pytest.mark.parametrize("style", ["loinc", "snomed", "boolean"])
def test_no_ces_answer_alone_yields_less_than_critical(
    concept: str, style: str, knowledge: Knowledge
) -> None:
    from testkit.casekit import build_qr

    qr = build_qr({"id": "ces", "answers": {concept: "yes"}, "style": style})
    cards = screen(qr, knowledge, hook_instance="h").evaluation.cards
    assert cards[0]["indicator"] == "critical"
    assert cards[0]["source"]["topic"]["code"] == "cauda-equina"
    suggestion = cards[0]["suggestions"][0]
    resource = suggestion["actions"][0]["resource"]
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["priority"] == "stat"
    assert resource["subject"] == {"reference": "Patient/example"}
    assert cards[0]["selectionBehavior"] == "at-most-one"


def test_evidence_names_question_answer_and_link_id(knowledge: Knowledge) -> None:
    case = next(c for c in CASES if c.id == "ces-saddle-alone")
    card = screen(case.qr, knowledge, hook_instance="h").evaluation.cards[0]
    assert "genitals, back passage (anus) or inner thighs" in card["detail"]
    assert "| Yes | `2.3` |" in card["detail"]
    assert "`cauda-equina-red-flag` version 1.0.0" in card["detail"]


def test_incomplete_card_lists_what_to_ask_and_why(knowledge: Knowledge) -> None:
    gated = next(c for c in CASES if c.id == "incomplete-ces-disabled-by-form-logic")
    card = screen(gated.qr, knowledge, hook_instance="h").evaluation.cards[0]
    assert "(`saddle-anaesthesia`: skipped by the form's logic)" in card["detail"]
    assert "(`fever`: not answered)" in card["detail"]
    unknown = next(c for c in CASES if c.id == "incomplete-saddle-unknown")
    card = screen(unknown.qr, knowledge, hook_instance="h").evaluation.cards[0]
    assert "(`saddle-anaesthesia`: answered Unknown)" in card["detail"]
    assert "(`fever`" not in card["detail"]
    form = next(c for c in CASES if c.id == "incomplete-unknown-questionnaire")
    card = screen(form.qr, knowledge, hook_instance="h").evaluation.cards[0]
    assert "could not be resolved" in card["detail"]
    assert "never-published" in card["detail"]


def test_technique_card_follows_exercise_type(knowledge: Knowledge) -> None:
    from testkit.casekit import build_qr

    def technique(exercise: str) -> str:
        qr = build_qr({"id": "t", "answers": {"exercise-type": exercise}})
        cards = screen(qr, knowledge, hook_instance="h").evaluation.cards
        return next(c["detail"] for c in cards if c["source"]["topic"]["code"] == "technique")

    assert "neutral spine" in technique("axial-loading")
    assert "shock absorption" in technique("impact")
    assert "anti-rotation" in technique("rotational")
    assert "Other or unreported exercise" in technique("other")
    assert "Axial loading" not in technique("impact")
