"""The pure engine: conditions, ordering, merging, suppression, urgency, voices,
provenance, determinism, purity."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from service.engine import (
    CARD_NAMESPACE,
    NO,
    PROVENANCE_EXTENSION,
    UNKNOWN,
    YES,
    All,
    Answer,
    AnyOf,
    CardTemplate,
    Facts,
    Not,
    Predicate,
    Rule,
    RuleSet,
    Section,
    Text,
    UrgencyLevel,
    check,
    evaluate,
)


def answer(concept: str, value: str | int | float, link_id: str | None = None) -> Answer:
    return Answer(concept, value, link_id or f"{concept}.1", f"Q {concept}?", None, str(value))


def facts(*answers: Answer, known: bool = True, notes: tuple[str, ...] = (), **kw: str) -> Facts:
    return Facts({a.concept: a for a in answers}, frozenset(), known, notes, "Patient/p", **kw)


PATIENT_TEXT = Text("patient summary", "Patient words. {urgency}\n{evidence}")


def template(
    summary: str = "s", detail: str = "{urgency}\n{evidence}", **kw: object
) -> CardTemplate:
    kw.setdefault("patient", PATIENT_TEXT)
    return CardTemplate(summary, detail, "Topic", **kw)  # type: ignore[arg-type]


def rule(
    id: str,
    topic: str,
    indicator: str,
    condition: object,
    *,
    priority: int = 1,
    urgency: str = "soon",
    concepts: frozenset[str] = frozenset(),
    **kw: object,
) -> Rule:
    return Rule(
        id,
        "1.0.0",
        topic,
        indicator,
        concepts,
        condition,  # type: ignore[arg-type]
        template(**kw),
        priority=priority,
        urgency=urgency,
    )


YES_A = Predicate("answered-yes", ("a",))
YES_B = Predicate("answered-yes", ("b",))
LEVELS = {
    code: UrgencyLevel(code, {"clinician": f"{code} for the clinician", "patient": f"{code}, you"})
    for code in ("emergency", "same-day", "soon", "routine", "self-care")
}


class TestConditions:
    def test_answered_yes_over_several_concepts_collects_every_yes(self) -> None:
        outcome = check(
            Predicate("answered-yes", ("a", "b", "c")),
            facts(answer("a", YES), answer("b", NO), answer("c", YES)),
        )
        assert outcome.holds
        assert [a.concept for a in outcome.evidence] == ["a", "c"]

    def test_unknown_is_not_no_and_not_yes(self) -> None:
        f = facts(answer("a", UNKNOWN))
        assert not check(YES_A, f).holds
        assert not check(Predicate("answered-no", ("a",)), f).holds
        outcome = check(Predicate("unanswered", ("a", "b")), f)
        assert outcome.holds and outcome.missing == ("a", "b")

    def test_number_and_choice_predicates(self) -> None:
        f = facts(answer("h", 72), answer("t", "worsening"))
        assert check(Predicate("number-at-least", ("h",), threshold=72.0), f).holds
        assert not check(Predicate("number-at-least", ("h",), threshold=72.5), f).holds
        assert check(Predicate("number-below", ("h",), threshold=73.0), f).holds
        assert check(Predicate("choice-in", ("t",), codes=frozenset({"worsening"})), f).holds
        assert not check(Predicate("choice-in", ("t",), codes=frozenset({"improving"})), f).holds
        assert not check(Predicate("number-at-least", ("t",), threshold=1.0), f).holds

    def test_all_any_not(self) -> None:
        f = facts(answer("a", YES), answer("b", NO))
        assert check(AnyOf((YES_A, YES_B)), f).holds
        assert not check(All((YES_A, YES_B)), f).holds
        assert check(All((YES_A, Not(YES_B))), f).holds
        assert check(Not(YES_B), f).evidence == ()

    def test_questionnaire_unknown_and_always(self) -> None:
        assert check(Predicate("questionnaire-unknown"), facts(known=False)).holds
        assert not check(Predicate("questionnaire-unknown"), facts()).holds
        assert check(Predicate("always"), facts()).holds

    def test_form_in_progress_reads_the_status(self) -> None:
        assert check(Predicate("form-in-progress"), facts(status="in-progress")).holds
        assert not check(Predicate("form-in-progress"), facts(status="completed")).holds
        assert not check(Predicate("form-in-progress"), facts()).holds


def ruleset(*rules: Rule) -> RuleSet:
    return RuleSet(
        "test-rules",
        "2.0.0",
        rules,
        {"a": "Question A", "b": "Question B", "c": "Question C"},
        "urn:topics",
        title="Test rules",
        urgencies=LEVELS,
        raised_notes={"clinician": "(raised)", "patient": "(because of another answer)"},
    )


def provenance(card: dict[str, object]) -> dict[str, object]:
    return card["extension"][PROVENANCE_EXTENSION]  # type: ignore[index,no-any-return]


class TestEvaluate:
    def test_cards_are_ordered_and_self_care_suppressed(self) -> None:
        rs = ruleset(
            rule("crit", "t-crit", "critical", YES_A, urgency="emergency"),
            rule("warn", "t-warn", "warning", YES_B),
            rule("care", "t-care", "info", Predicate("always"), urgency="self-care"),
        )
        out = evaluate(rs, facts(answer("a", YES), answer("b", YES)), hook_instance="h")
        assert [c["indicator"] for c in out.cards] == ["critical", "warning"]
        quiet = evaluate(rs, facts(answer("a", NO), answer("b", NO)), hook_instance="h")
        assert [c["source"]["topic"]["code"] for c in quiet.cards] == ["t-care"]
        assert quiet.disposition == "self-care"
        assert out.rules_version == "test-rules 2.0.0"

    def test_within_an_indicator_the_more_urgent_card_comes_first(self) -> None:
        rs = ruleset(
            rule("soon", "t-soon", "warning", YES_A, priority=1, urgency="soon"),
            rule("today", "t-today", "warning", YES_B, priority=9, urgency="same-day"),
        )
        out = evaluate(rs, facts(answer("a", YES), answer("b", YES)), hook_instance="h")
        assert [c["source"]["topic"]["code"] for c in out.cards] == ["t-today", "t-soon"]

    def test_rules_of_one_topic_make_one_card_with_merged_evidence(self) -> None:
        rs = ruleset(
            rule("r2", "same", "critical", YES_B, priority=2, urgency="emergency"),
            rule("r1", "same", "warning", YES_A),
        )
        out = evaluate(rs, facts(answer("a", YES), answer("b", YES)), hook_instance="h")
        assert len(out.cards) == 1
        assert out.cards[0]["indicator"] == "critical"
        assert "Q a?" in out.cards[0]["detail"] and "Q b?" in out.cards[0]["detail"]
        assert {f.rule_id for f in out.findings} == {"r1", "r2"}
        assert {f.card_uuid for f in out.findings} == {out.cards[0]["uuid"]}
        assert [r["id"] for r in provenance(out.cards[0])["rules"]] == ["r2", "r1"]  # type: ignore[attr-defined]

    def test_deterministic_uuids_from_hook_instance_and_rule(self) -> None:
        rs = ruleset(rule("r1", "t", "warning", YES_A))
        f = facts(answer("a", YES))
        first = evaluate(rs, f, hook_instance="hook-1")
        assert first == evaluate(rs, f, hook_instance="hook-1")
        assert first.cards[0]["uuid"] == str(uuid.uuid5(CARD_NAMESPACE, "hook-1:r1"))
        assert evaluate(rs, f, hook_instance="hook-2").cards[0]["uuid"] != first.cards[0]["uuid"]

    def test_missing_answers_are_explained_in_words(self) -> None:
        rs = ruleset(
            rule(
                "inc",
                "inc",
                "warning",
                Predicate("unanswered", ("a", "b")),
                detail="{missing}\n{notes}\n{evidence}\n{urgency}",
            )
        )
        f = Facts({"a": answer("a", UNKNOWN)}, frozenset({"b"}), True, ("a note",))
        card = evaluate(rs, f, hook_instance="h").cards[0]
        assert "- Question A (answered Unknown)" in card["detail"]
        assert "- Question B (skipped by the form's logic)" in card["detail"]
        assert "- a note" in card["detail"]
        assert "`a`" not in card["detail"]
        assert provenance(card)["missing"] == ["a", "b"]

    def test_ask_now_is_ordered_by_the_most_urgent_rule_reading_each_question(self) -> None:
        rs = ruleset(
            rule("inc", "inc", "warning", Predicate("unanswered", ("a", "b", "c")),
                 urgency="same-day", detail="{missing}\n{evidence}\n{urgency}"),
            rule("c-rule", "tc", "critical", Predicate("answered-yes", ("c",)),
                 urgency="emergency", concepts=frozenset({"c"})),
            rule("b-rule", "tb", "warning", Predicate("answered-yes", ("b",)),
                 urgency="same-day", concepts=frozenset({"b"})),
        )  # fmt: skip
        card = evaluate(rs, facts(), hook_instance="h").cards[0]
        assert provenance(card)["missing"] == ["c", "b", "a"]
        lines = [line for line in card["detail"].splitlines() if line.startswith("- Question")]
        assert lines == [
            "- Question C (not answered)",
            "- Question B (not answered)",
            "- Question A (not answered)",
        ]

    def test_sections_and_suggestions(self) -> None:
        card = template(
            detail="{sections}\n{evidence}",
            patient=Text("p", "{sections}"),
            sections=(Section(YES_A, "Section A", "Patient A"), Section(YES_B, "Section B")),
            suggestions=(
                {
                    "id": "s1",
                    "label": "Refer",
                    "actions": [
                        {
                            "type": "create",
                            "description": "d",
                            "resource": {
                                "resourceType": "ServiceRequest",
                                "subject": {"reference": "{subject}"},
                            },
                        }
                    ],
                },
            ),
        )
        rs = ruleset(Rule("r", "1.0.0", "t", "info", frozenset(), Predicate("always"), card))
        out = evaluate(rs, facts(answer("a", YES), answer("b", NO)), hook_instance="h")
        c = out.cards[0]
        assert "Section A" in c["detail"] and "Section B" not in c["detail"]
        assert provenance(c)["evidence"] == [{"linkId": "a.1", "concept": "a", "value": "yes"}]
        assert c["suggestions"][0]["actions"][0]["resource"]["subject"] == {
            "reference": "Patient/p"
        }
        assert c["suggestions"][0]["uuid"] == str(uuid.uuid5(CARD_NAMESPACE, "h:r:s1"))
        assert c["selectionBehavior"] == "at-most-one"
        no_subject = Facts({}, frozenset(), True)
        resource = evaluate(rs, no_subject, hook_instance="h").cards[0]["suggestions"][0][
            "actions"
        ][0]["resource"]
        assert "subject" not in resource
        patient = evaluate(rs, facts(answer("a", YES)), hook_instance="h", voice="patient").cards[0]
        assert patient["detail"] == "Patient A"
        assert "suggestions" not in patient and "selectionBehavior" not in patient

    def test_evidence_is_a_plain_list_without_link_ids_or_rule_ids(self) -> None:
        rs = ruleset(rule("the-rule", "t", "warning", AnyOf((YES_A, YES_B))))
        f = facts(
            Answer("a", YES, "2.3", "A | B?", "LA33-6", "Yes"),
            Answer("b", YES, "4.1", "Fever", None, "Yes"),
        )
        card = evaluate(rs, f, hook_instance="h").cards[0]
        assert "- A | B? Yes\n- Fever: Yes" in card["detail"]
        assert "2.3" not in card["detail"] and "the-rule" not in card["detail"]
        assert "|---" not in card["detail"]
        assert provenance(card) == {
            "ruleSet": {"name": "test-rules", "version": "2.0.0"},
            "rules": [
                {"id": "the-rule", "version": "1.0.0", "indicator": "warning", "urgency": "soon"}
            ],
            "urgency": "soon",
            "disposition": "soon",
            "voice": "clinician",
            "evidence": [
                {"linkId": "2.3", "concept": "a", "value": "yes", "code": "LA33-6"},
                {"linkId": "4.1", "concept": "b", "value": "yes"},
            ],
            "missing": [],
        }

    def test_source_names_the_rule_set_and_points_at_the_rule_page(self) -> None:
        rs = ruleset(rule("r1", "t", "warning", YES_A))
        f = facts(answer("a", YES))
        source = evaluate(rs, f, hook_instance="h", base_url="https://cds.example/").cards[0][
            "source"
        ]
        assert source == {
            "label": "Test rules (test-rules 2.0.0)",
            "url": "https://cds.example/rules/r1",
            "topic": {"system": "urn:topics", "code": "t", "display": "Topic"},
        }
        assert "url" not in evaluate(rs, f, hook_instance="h").cards[0]["source"]

    def test_no_card_states_a_slower_timeline_than_the_disposition(self) -> None:
        rs = ruleset(
            rule("now", "t-now", "critical", YES_A, urgency="emergency"),
            rule("later", "t-later", "warning", YES_B, urgency="soon"),
        )
        both = facts(answer("a", YES), answer("b", YES))
        out = evaluate(rs, both, hook_instance="h")
        assert out.disposition == "emergency"
        assert out.cards[0]["detail"].startswith("emergency for the clinician\n")
        assert out.cards[1]["detail"].startswith("emergency for the clinician (raised)\n")
        assert [f.urgency for f in out.findings] == ["emergency", "soon"]
        alone = evaluate(rs, facts(answer("b", YES)), hook_instance="h")
        assert alone.cards[0]["detail"].startswith("soon for the clinician\n")
        patient = evaluate(rs, both, hook_instance="h", voice="patient")
        assert patient.cards[1]["summary"] == "patient summary"
        assert patient.cards[1]["detail"].startswith(
            "Patient words. emergency, you (because of another answer)"
        )

    def test_an_unknown_voice_is_refused(self) -> None:
        rs = ruleset(rule("r1", "t", "warning", YES_A))
        with pytest.raises(ValueError, match="voice"):
            evaluate(rs, facts(), hook_instance="h", voice="robot")


@pytest.mark.parametrize("module", ["service.engine"])
def test_engine_imports_only_the_standard_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "banned = ('flask', 'sqlalchemy', 'fhir', 'fhir_core', 'pydantic', 'marshmallow', 'yaml')\n"
        "bad = [m for m in banned if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
