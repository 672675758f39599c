"""Invariants of CLINICAL.md, checked against the loaded rules at start-up."""

from __future__ import annotations

from service.engine import NO, YES, Answer, Facts, RuleSet, evaluate
from service.knowledge.rule_schema import RuleFileError
from service.knowledge.terminology import VALUESET_BASE, Terminology


def clean_answers(terminology: Terminology) -> dict[str, Answer]:
    """A screen with every question answered in its least alarming way."""
    answers: dict[str, Answer] = {}
    for code, concept in terminology.questions().items():
        value: str | int
        if concept.answer_type == "yes-no-unknown":
            value = NO
        elif concept.answer_type in {"choice", "ordered-choice"}:
            value = terminology.choices_of(code)[0]
        else:
            value = 0
        answers[code] = Answer(code, value, code, concept.definition, None, str(value))
    return answers


def check_safety(ruleset: RuleSet, terminology: Terminology) -> None:
    """Invariants of CLINICAL.md, checked against the loaded rules at start-up."""
    base = clean_answers(terminology)
    clean = evaluate(ruleset, Facts(base, frozenset(), True), hook_instance="safety-check")
    alarming = [c["source"]["topic"]["code"] for c in clean.cards if c["indicator"] != "info"]
    if alarming:
        raise RuleFileError(f"safety check: a clean screen yields {alarming}")
    ces = terminology.value_sets.get(VALUESET_BASE + "cauda-equina", frozenset())
    if not ces:
        raise RuleFileError("safety check: ValueSet cauda-equina is missing or empty")
    for concept in sorted(ces):
        answers = dict(base)
        answers[concept] = Answer(concept, YES, concept, concept, None, "Yes")
        result = evaluate(ruleset, Facts(answers, frozenset(), True), hook_instance="safety-check")
        if not result.cards or result.cards[0]["indicator"] != "critical":
            raise RuleFileError(
                f"safety check: {concept} = Yes alone does not yield a critical card"
            )
    screen = terminology.value_sets.get(VALUESET_BASE + "red-flag-screen", frozenset())
    for concept in sorted(screen):
        answers = {k: v for k, v in base.items() if k != concept}
        result = evaluate(ruleset, Facts(answers, frozenset(), True), hook_instance="safety-check")
        if "screen-incomplete" not in {c["source"]["topic"]["code"] for c in result.cards}:
            raise RuleFileError(f"safety check: {concept} unanswered does not say so")
