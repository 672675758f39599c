"""The pure engine: conditions, ordering, merging, suppression, determinism, purity."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from service.engine import (
    CARD_NAMESPACE,
    NO,
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
    check,
    evaluate,
)


def answer(concept: str, value: str | int | float, link_id: str | None = None) -> Answer:
    return Answer(concept, value, link_id or concept, f"Q {concept}?", None, str(value))


def facts(*answers: Answer, known: bool = True, notes: tuple[str, ...] = ()) -> Facts:
    return Facts({a.concept: a for a in answers}, frozenset(), known, notes, "Patient/p")


def template(summary: str = "s", detail: str = "{evidence}\n{rule}", **kw: object) -> CardTemplate:
    return CardTemplate(summary, detail, "Topic", "https://example.org/g", **kw)  # type: ignore[arg-type]


def rule(
    id: str, topic: str, indicator: str, condition: object, *, priority: int = 1, **kw: object
) -> Rule:
    return Rule(
        id, "1.0.0", topic, indicator, frozenset(), condition, template(), priority=priority, **kw
    )  # type: ignore[arg-type]


YES_A = Predicate("answered-yes", ("a",))
YES_B = Predicate("answered-yes", ("b",))


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


def ruleset(*rules: Rule) -> RuleSet:
    return RuleSet(
        "test-rules", "2.0.0", rules, {"a": "Question A", "b": "Question B"}, "urn:topics"
    )


class TestEvaluate:
    def test_cards_are_ordered_and_self_care_suppressed(self) -> None:
        rs = ruleset(
            rule("crit", "t-crit", "critical", YES_A),
            rule("warn", "t-warn", "warning", YES_B),
            rule("care", "t-care", "info", Predicate("always"), self_care=True),
        )
        out = evaluate(rs, facts(answer("a", YES), answer("b", YES)), hook_instance="h")
        assert [c["indicator"] for c in out.cards] == ["critical", "warning"]
        quiet = evaluate(rs, facts(answer("a", NO), answer("b", NO)), hook_instance="h")
        assert [c["source"]["topic"]["code"] for c in quiet.cards] == ["t-care"]
        assert out.rules_version == "test-rules 2.0.0"

    def test_rules_of_one_topic_make_one_card_with_merged_evidence(self) -> None:
        rs = ruleset(
            rule("r1", "same", "warning", YES_A), rule("r2", "same", "critical", YES_B, priority=2)
        )
        out = evaluate(rs, facts(answer("a", YES), answer("b", YES)), hook_instance="h")
        assert len(out.cards) == 1
        assert out.cards[0]["indicator"] == "critical"
        assert "Q a?" in out.cards[0]["detail"] and "Q b?" in out.cards[0]["detail"]
        assert {f.rule_id for f in out.findings} == {"r1", "r2"}
        assert {f.card_uuid for f in out.findings} == {out.cards[0]["uuid"]}

    def test_deterministic_uuids_from_hook_instance_and_rule(self) -> None:
        rs = ruleset(rule("r1", "t", "warning", YES_A))
        f = facts(answer("a", YES))
        first = evaluate(rs, f, hook_instance="hook-1")
        assert first == evaluate(rs, f, hook_instance="hook-1")
        assert first.cards[0]["uuid"] == str(uuid.uuid5(CARD_NAMESPACE, "hook-1:r1"))
        assert evaluate(rs, f, hook_instance="hook-2").cards[0]["uuid"] != first.cards[0]["uuid"]

    def test_missing_answers_are_explained(self) -> None:
        rs = ruleset(
            Rule(
                "inc",
                "1.0.0",
                "inc",
                "warning",
                frozenset(),
                Predicate("unanswered", ("a", "b")),
                template(detail="{missing}\n{notes}\n{evidence}\n{rule}"),
            )
        )
        f = Facts({"a": answer("a", UNKNOWN)}, frozenset({"b"}), True, ("a note",))
        detail = evaluate(rs, f, hook_instance="h").cards[0]["detail"]
        assert "Question A (`a`: answered Unknown)" in detail
        assert "Question B (`b`: skipped by the form's logic)" in detail
        assert "- a note" in detail

    def test_sections_and_suggestions(self) -> None:
        card = template(
            detail="{sections}\n{evidence}\n{rule}",
            sections=(Section(YES_A, "Section A"), Section(YES_B, "Section B")),
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

    def test_pipe_in_question_text_is_escaped(self) -> None:
        rs = ruleset(rule("r", "t", "warning", YES_A))
        f = facts(Answer("a", YES, "l|1", "A | B?", None, "Yes"))
        assert "A \\| B?" in evaluate(rs, f, hook_instance="h").cards[0]["detail"]


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
