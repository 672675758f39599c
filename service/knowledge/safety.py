"""Invariants of CLINICAL.md, checked against the loaded rules at start-up.

Each check screens made-up answers through the real engine; a rule change that
breaks a principle stops start-up with a ``RuleFileError`` saying which.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.engine import (
    IN_PROGRESS,
    NO,
    URGENCY_RANK,
    VOICES,
    YES,
    Answer,
    Evaluation,
    Facts,
    RuleSet,
    evaluate,
)
from service.knowledge.rule_schema import RuleFileError
from service.knowledge.terminology import VALUESET_BASE, Terminology

_HOOK = "safety-check"


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


def alarming_answers(terminology: Terminology) -> dict[str, Answer]:
    """Every red flag ticked: Yes to every yes/no question, the last (most severe)
    choice of every choice, a large number for every number."""
    answers: dict[str, Answer] = {}
    for code, concept in terminology.questions().items():
        value: str | int
        if concept.answer_type == "yes-no-unknown":
            value = YES
        elif concept.answer_type in {"choice", "ordered-choice"}:
            value = terminology.choices_of(code)[-1]
        else:
            value = 10_000
        answers[code] = Answer(code, value, code, concept.definition, None, str(value))
    return answers


def _screen(
    ruleset: RuleSet, answers: Mapping[str, Answer], *, voice: str = "clinician", **facts: object
) -> Evaluation:
    return evaluate(
        ruleset,
        Facts(answers, frozenset(), True, **facts),  # type: ignore[arg-type]
        hook_instance=_HOOK,
        voice=voice,
    )


def check_safety(ruleset: RuleSet, terminology: Terminology) -> None:
    """Invariants of CLINICAL.md, checked against the loaded rules at start-up."""
    base = clean_answers(terminology)
    clean = _screen(ruleset, base)
    alarming = [c["source"]["topic"]["code"] for c in clean.cards if c["indicator"] != "info"]
    if alarming:
        raise RuleFileError(f"safety check: a clean screen yields {alarming}")
    ces = terminology.value_sets.get(VALUESET_BASE + "cauda-equina", frozenset())
    if not ces:
        raise RuleFileError("safety check: ValueSet cauda-equina is missing or empty")
    for concept in sorted(ces):
        answers = dict(base)
        answers[concept] = Answer(concept, YES, concept, concept, None, "Yes")
        result = _screen(ruleset, answers)
        if not result.cards or result.cards[0]["indicator"] != "critical":
            raise RuleFileError(
                f"safety check: {concept} = Yes alone does not yield a critical card"
            )
    screen = terminology.value_sets.get(VALUESET_BASE + "red-flag-screen", frozenset())
    for concept in sorted(screen):
        answers = {k: v for k, v in base.items() if k != concept}
        result = _screen(ruleset, answers)
        if "screen-incomplete" not in {c["source"]["topic"]["code"] for c in result.cards}:
            raise RuleFileError(f"safety check: {concept} unanswered does not say so")
    check_one_urgency(ruleset, alarming_answers(terminology))
    check_in_progress(ruleset, base, ces)


def check_one_urgency(ruleset: RuleSet, answers: Mapping[str, Answer]) -> None:
    """Principle 8: with every red flag ticked, no card states a slower timeline than
    the answer's disposition, in either voice."""
    for voice in VOICES:
        result = _screen(ruleset, answers, voice=voice)
        disposition = result.disposition
        if disposition is None:
            raise RuleFileError("safety check: every red flag ticked yields no card")
        slower = [
            level
            for code, level in ruleset.urgencies.items()
            if URGENCY_RANK[code] > URGENCY_RANK[disposition]
        ]
        expected = ruleset.urgencies[disposition].line(voice) if ruleset.urgencies else ""
        fired = {f.card_uuid: f.rule_id for f in result.findings}
        for card in result.cards:
            rule = ruleset.rule(fired[card["uuid"]])
            text = f"{card['summary']}\n{card['detail']}".lower()
            uses_urgency = rule is not None and "{urgency}" in rule.card.text(voice).detail
            if uses_urgency and expected.lower() not in text:
                raise RuleFileError(
                    f"safety check: every red flag ticked ({voice} voice): card of rule "
                    f"{rule.id if rule else '?'} does not say the disposition ({disposition})"
                )
            for level in slower:
                for words in (level.line(voice), *level.phrases):
                    if words.lower() in text:
                        raise RuleFileError(
                            f"safety check: every red flag ticked ({voice} voice): card "
                            f"{card['source']['topic']['code']} says {words!r} ({level.code}), "
                            f"slower than the disposition ({disposition})"
                        )


def check_in_progress(ruleset: RuleSet, clean: Mapping[str, Answer], ces: frozenset[str]) -> None:
    """Principle 10: a form in progress gets the red flags found so far and at most one
    quiet line; never a self-care card, never a list of questions not reached yet."""
    for name, answers in (("nothing answered", {}), ("no red flag so far", clean)):
        result = _screen(ruleset, answers, status=IN_PROGRESS)
        _no_self_care_in_progress(result, name)
        loud = [c["source"]["topic"]["code"] for c in result.cards if c["indicator"] != "info"]
        if loud or len(result.cards) > 1:
            raise RuleFileError(
                f"safety check: a form in progress with {name} yields "
                f"{[c['source']['topic']['code'] for c in result.cards]}, "
                "not at most one quiet line"
            )
    for concept in sorted(ces):
        answers = {concept: Answer(concept, YES, concept, concept, None, "Yes")}
        result = _screen(ruleset, answers, status=IN_PROGRESS)
        if not result.cards or result.cards[0]["indicator"] != "critical":
            raise RuleFileError(
                f"safety check: a form in progress with {concept} = Yes has no critical card"
            )
        if any(f.missing for f in result.findings):
            raise RuleFileError(
                f"safety check: a form in progress with {concept} = Yes reports questions "
                "not reached yet"
            )
        _no_self_care_in_progress(result, f"{concept} = Yes")


def _no_self_care_in_progress(result: Evaluation, name: str) -> None:
    care = sorted({f.rule_id for f in result.findings if f.urgency == "self-care"})
    if care:
        raise RuleFileError(
            f"safety check: a form in progress with {name} yields self-care cards {care}"
        )
