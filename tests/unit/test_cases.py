"""Every clinical vignette in tests/cases/*.yaml, through service.cds.screen.screen,
in both voices; and the principles every answer keeps (CLINICAL.md)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import textstat

from service.cds.screen import screen
from service.engine import PROVENANCE_EXTENSION, URGENCY_RANK, evaluate
from service.engine.model import Facts
from service.knowledge import Knowledge
from service.knowledge.safety import alarming_answers
from testkit.casekit import Case, build_qr, indicators_of, load_cases, topics_of

CASES = load_cases()
HOOK = "11111111-2222-4333-8444-555555555555"
BASE = "https://cds.example.org"
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
SELF_CARE_TOPICS = {"immediate-steps", "technique", "stabilisation"}
RANKS = {"critical": 0, "warning": 1, "info": 2}


def cards_of(qr: dict[str, Any], knowledge: Knowledge, voice: str = "clinician") -> list[dict]:
    result = screen(qr, knowledge, hook_instance=HOOK, voice=voice, public_url=BASE)
    return list(result.evaluation.cards)


def provenance(card: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = card["extension"][PROVENANCE_EXTENSION]
    return found


@pytest.mark.parametrize("voice", ["clinician", "patient"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, voice: str, knowledge: Knowledge) -> None:
    cards = cards_of(case.qr, knowledge, voice)
    assert (topics_of(cards), indicators_of(cards)) == (
        case.expected_topics,
        case.expected_indicators,
    ), case.description
    _assert_principles(cards, knowledge, voice)


def _assert_principles(cards: list[dict], knowledge: Knowledge, voice: str) -> None:
    assert cards, "never silence"
    order = [(RANKS[c["indicator"]], URGENCY_RANK[provenance(c)["urgency"]]) for c in cards]
    assert order == sorted(order), "most urgent first"
    topics = topics_of(cards)
    assert len(topics) == len(set(topics)), "one card per family"
    if any(c["indicator"] != "info" for c in cards):
        assert not SELF_CARE_TOPICS & set(topics)
    dispositions = {provenance(c)["disposition"] for c in cards}
    assert dispositions == {min((provenance(c)["urgency"] for c in cards), key=URGENCY_RANK.get)}
    (disposition,) = dispositions
    line = knowledge.ruleset.urgencies[disposition].line(voice)
    ruleset = knowledge.ruleset
    for card in cards:
        assert len(card["summary"]) < 140
        _assert_plain_text(card)
        facts = provenance(card)
        assert facts["voice"] == voice
        assert facts["ruleSet"] == {"name": ruleset.name, "version": ruleset.version}
        assert card["source"]["label"] == f"{ruleset.title} ({ruleset.label})"
        assert card["source"]["url"] == f"{BASE}/rules/{facts['rules'][0]['id']}"
        assert not card["source"]["url"].startswith("https://cks.nice.org.uk")
        if card["indicator"] != "info":
            assert card["overrideReasons"]
            assert line in card["detail"], "the How urgent line is the disposition's"
        if card["source"]["topic"]["code"] != "screen-incomplete":
            assert facts["evidence"], "every card names the answers that fired it"
        assert ("suggestions" in card) <= (voice == "clinician")


def _assert_plain_text(card: dict[str, Any]) -> None:
    """No markdown table, no linkId, no rule id, no "Rule `x` version" line."""
    text = card["summary"] + "\n" + card["detail"]
    facts = provenance(card)
    assert "|" not in text
    assert "Rule `" not in text
    assert not re.search(r"version \d+\.\d+\.\d+", text)
    for rule in facts["rules"]:
        assert rule["id"] not in text
        assert rule["version"]
    for answer in facts["evidence"]:
        if answer["linkId"].isalpha():
            continue  # a plain word ("findings") may be in the question text itself
        assert not re.search(rf"(?<![\w.-]){re.escape(answer['linkId'])}(?![\w-])", text), answer[
            "linkId"
        ]
        assert f"`{answer['concept']}`" not in text


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
    qr = build_qr({"id": "ces", "answers": {concept: "yes"}, "style": style})
    cards = cards_of(qr, knowledge)
    assert cards[0]["indicator"] == "critical"
    assert cards[0]["source"]["topic"]["code"] == "cauda-equina"
    suggestion = cards[0]["suggestions"][0]
    resource = suggestion["actions"][0]["resource"]
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["priority"] == "stat"
    assert resource["subject"] == {"reference": "Patient/example"}
    assert cards[0]["selectionBehavior"] == "at-most-one"


def test_evidence_is_a_plain_list_and_provenance_is_in_the_extension(
    knowledge: Knowledge,
) -> None:
    case = next(c for c in CASES if c.id == "ces-saddle-alone")
    card = cards_of(case.qr, knowledge)[0]
    assert (
        "- Do you have numbness or tingling around your genitals, back passage (anus) or "
        "inner thighs? Yes" in card["detail"]
    )
    facts = provenance(card)
    assert facts["rules"] == [
        {"id": "cauda-equina-red-flag", "version": "1.1.0", "indicator": "critical",
         "urgency": "emergency"}
    ]  # fmt: skip
    assert facts["evidence"] == [
        {"linkId": "2.3", "concept": "saddle-anaesthesia", "value": "yes", "code": "LA33-6"}
    ]
    assert facts["urgency"] == facts["disposition"] == "emergency"


def test_incomplete_card_lists_what_to_ask_and_why(knowledge: Knowledge) -> None:
    gated = next(c for c in CASES if c.id == "incomplete-ces-disabled-by-form-logic")
    card = cards_of(gated.qr, knowledge)[0]
    assert (
        "- Numbness or tingling around the genitals, anus or inner thighs "
        "(skipped by the form's logic)" in card["detail"]
    )
    assert "- Fever, chills or sweats with the pain (not answered)" in card["detail"]
    assert {"saddle-anaesthesia", "fever"} <= set(provenance(card)["missing"])
    unknown = next(c for c in CASES if c.id == "incomplete-saddle-unknown")
    card = cards_of(unknown.qr, knowledge)[0]
    assert "inner thighs (answered Unknown)" in card["detail"]
    assert "Fever" not in card["detail"]
    assert provenance(card)["missing"] == ["saddle-anaesthesia"]
    patient = cards_of(unknown.qr, knowledge, "patient")[0]
    assert "inner thighs (you were not sure)" in patient["detail"]
    form = next(c for c in CASES if c.id == "incomplete-unknown-questionnaire")
    card = cards_of(form.qr, knowledge)[0]
    assert "could not be resolved" in card["detail"]
    assert "never-published" in card["detail"]


def test_ask_now_puts_cauda_equina_questions_first(knowledge: Knowledge) -> None:
    """Issue 12 item 8: the list was alphabetical (saddle numbness 14th of 17)."""
    qr = build_qr({"id": "bare", "defaults": False, "answers": {"exercise-type": "impact"}})
    card = cards_of(qr, knowledge)[0]
    missing = provenance(card)["missing"]
    assert len(missing) == 17
    assert set(missing[:5]) == set(CES)
    asked = [line for line in card["detail"].splitlines() if line.endswith("(not answered)")]
    assert len(asked) == 17
    questions = knowledge.ruleset.questions
    assert [questions[c] for c in missing] == [a[2 : -len(" (not answered)")] for a in asked]
    neuro = missing.index("neuro-symptoms-worsening")
    assert neuro < missing.index("fever"), "same-day before within days"


def test_technique_card_follows_exercise_type_and_cites_it(knowledge: Knowledge) -> None:
    def technique(exercise: str, voice: str = "clinician") -> dict[str, Any]:
        qr = build_qr({"id": "t", "answers": {"exercise-type": exercise}})
        cards = cards_of(qr, knowledge, voice)
        return next(c for c in cards if c["source"]["topic"]["code"] == "technique")

    assert "neutral spine" in technique("axial-loading")["detail"]
    assert "shock absorption" in technique("impact")["detail"]
    assert "anti-rotation" in technique("rotational")["detail"]
    other = technique("other")
    assert "Other or unreported exercise" in other["detail"]
    assert {"concept": "exercise-type", "value": "other"}.items() <= next(
        e for e in provenance(other)["evidence"] if e["concept"] == "exercise-type"
    ).items()
    assert "Axial loading" not in technique("impact")["detail"]
    assert "Running and jumping" in technique("impact", "patient")["detail"]


def in_progress(spec: dict[str, Any]) -> dict[str, Any]:
    qr = build_qr(spec)
    qr["status"] = "in-progress"
    return qr


HALF_FORM = {
    "id": "half",
    "defaults": False,
    "answers": {"exercise-type": "axial-loading", "hours-since-onset": 5, "pain-severity": 4},
}


@pytest.mark.parametrize("voice", ["clinician", "patient"])
def test_in_progress_form_gets_one_quiet_line_not_missing_questions(
    voice: str, knowledge: Knowledge
) -> None:
    cards = cards_of(in_progress(HALF_FORM), knowledge, voice)
    assert indicators_of(cards) == ("info",)
    assert provenance(cards[0])["missing"] == []
    assert provenance(cards[0])["rules"][0]["id"] == "screen-in-progress"
    completed = cards_of(build_qr(HALF_FORM), knowledge, voice)
    assert topics_of(completed) == ("screen-incomplete",)
    assert indicators_of(completed) == ("warning",)
    assert len(provenance(completed[0])["missing"]) == 17


def test_in_progress_form_reports_red_flags_found_so_far(knowledge: Knowledge) -> None:
    spec = copy.deepcopy(HALF_FORM)
    spec["answers"]["bladder-dysfunction-new"] = "yes"
    cards = cards_of(in_progress(spec), knowledge, "patient")
    assert topics_of(cards) == ("cauda-equina", "screen-incomplete")
    assert indicators_of(cards) == ("critical", "info")
    assert not any(provenance(c)["missing"] for c in cards)
    assert "emergency department now" in cards[0]["detail"]


def test_patient_text_reads_at_grade_8_or_lower(knowledge: Knowledge) -> None:
    """Principle 9: every patient summary+detail as rendered, Flesch-Kincaid <= 8."""
    grades: dict[str, float] = {}

    def measure(card: dict[str, Any]) -> None:
        rule = provenance(card)["rules"][0]["id"]
        grade = textstat.flesch_kincaid_grade(_words(card["summary"] + "\n" + card["detail"]))
        grades[rule] = max(grade, grades.get(rule, grade))

    for qr in [c.qr for c in CASES] + [in_progress(HALF_FORM)]:
        for card in cards_of(qr, knowledge, "patient"):
            measure(card)
    every_flag = Facts(alarming_answers(knowledge.terminology), frozenset(), True)
    for card in evaluate(knowledge.ruleset, every_flag, hook_instance="h", voice="patient").cards:
        measure(card)
    assert set(grades) == {rule.id for rule in knowledge.ruleset.rules}
    assert all(grade <= 8 for grade in grades.values()), grades


def _words(markdown: str) -> str:
    """The words a reader reads: markdown emphasis removed, and each list item a
    sentence of its own (as a reader takes it; Flesch-Kincaid counts sentences by
    their final stop)."""
    lines = []
    for line in re.sub(r"[*_`#]", "", markdown).splitlines():
        item = re.match(r"^\s*- (.*)$", line)
        if item:
            line = item.group(1).rstrip()
            line = line if line.endswith((".", "?", "!", ":")) else line + "."
        lines.append(line)
    return "\n".join(lines)
