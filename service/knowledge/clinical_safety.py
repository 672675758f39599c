"""Start-up checks that the clinical content keeps CLINICAL.md principles 6 and 7.

- Combinations escalate: every way a critical rule can fire (each branch of its
  condition, with every other answer at its least alarming), alone, gives that
  rule's critical card under the rule's topic.
- The patient's own words count: a free-text mention of any concept that has
  trigger phrases never ends in a "complete" screen (some red-flag card fires),
  and free text that could not be read always says the screen is incomplete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice

from service.engine import (
    NO,
    YES,
    All,
    Answer,
    AnyOf,
    Condition,
    Evaluation,
    Facts,
    Mention,
    Not,
    Predicate,
    Rule,
    RuleSet,
    evaluate,
)
from service.knowledge.rule_schema import RuleFileError
from service.knowledge.safety import clean_answers
from service.knowledge.terminology import Terminology

#: most ways of firing checked per rule (deterministic: the first ones in condition order)
MAX_WAYS = 256
_REMOVE = object()

#: one way a rule can fire: concept -> value (or _REMOVE), plus free-text facts
Way = tuple[tuple[tuple[str, object], ...], tuple[str, ...], bool, bool]
_EMPTY: Way = ((), (), False, False)


def _merge(a: Way, b: Way) -> Way:
    return (a[0] + b[0], a[1] + b[1], a[2] or b[2], a[3] or b[3])


def _ways(condition: Condition) -> Iterator[Way]:
    """The ways (a disjunctive normal form) a condition can hold, in condition order."""
    if isinstance(condition, Predicate):
        yield from _predicate_ways(condition)
    elif isinstance(condition, AnyOf):
        for child in condition.children:
            yield from _ways(child)
    elif isinstance(condition, All):
        combined: list[Way] = [_EMPTY]
        for child in condition.children:
            options = list(islice(_ways(child), MAX_WAYS))
            combined = [_merge(a, b) for a in combined for b in options][:MAX_WAYS]
        yield from combined
    elif isinstance(condition, Not):
        yield _EMPTY  # the least alarming screen usually keeps a "not" true; checked by evaluation


def _predicate_ways(p: Predicate) -> Iterator[Way]:
    if p.op == "answered-yes":
        for concept in p.concepts:
            yield (((concept, YES),), (), False, False)
    elif p.op == "answered-no":
        for concept in p.concepts:
            yield (((concept, NO),), (), False, False)
    elif p.op == "choice-in":
        for concept in p.concepts:
            for code in sorted(p.codes):
                yield (((concept, code),), (), False, False)
    elif p.op == "number-at-least":
        for concept in p.concepts:
            yield (((concept, p.threshold or 0.0),), (), False, False)
    elif p.op == "number-below":
        for concept in p.concepts:
            yield (((concept, (p.threshold or 0.0) - 1),), (), False, False)
    elif p.op == "unanswered":
        for concept in p.concepts:
            yield (((concept, _REMOVE),), (), False, False)
    elif p.op == "mentioned":
        for concept in p.concepts:
            yield ((), (concept,), False, False)
    elif p.op == "free-text-unread":
        yield ((), (), True, False)
    elif p.op == "questionnaire-unknown":
        yield ((), (), False, True)
    else:  # answered, always: the least alarming screen already holds them
        yield _EMPTY


def _mention(concept: str) -> Mention:
    return Mention(concept, "safety check", "safety-check", "Free text", concept)


def _facts(base: Mapping[str, Answer], way: Way) -> Facts:
    answers = dict(base)
    for concept, value in way[0]:
        if value is _REMOVE:
            answers.pop(concept, None)
        else:
            shown = str(value)
            number = value if isinstance(value, int | float) else None
            answers[concept] = Answer(
                concept, number if number is not None else shown, concept, concept, None, shown
            )
    return Facts(
        answers=answers,
        disabled=frozenset(),
        questionnaire_known=not way[3],
        mentions=tuple(_mention(c) for c in dict.fromkeys(way[1])),
        unread_text=("safety-check",) if way[2] else (),
    )


def _run(ruleset: RuleSet, facts: Facts) -> Evaluation:
    return evaluate(ruleset, facts, hook_instance="safety-check")


def _check_critical_rule(ruleset: RuleSet, rule: Rule, base: Mapping[str, Answer]) -> None:
    for way in islice(_ways(rule.condition), MAX_WAYS):
        result = _run(ruleset, _facts(base, way))
        fired = {f.rule_id for f in result.findings}
        topics = {c["source"]["topic"]["code"]: c["indicator"] for c in result.cards}
        if rule.id not in fired or topics.get(rule.topic) != "critical":
            given = ", ".join(f"{c}={'unanswered' if v is _REMOVE else v}" for c, v in way[0])
            raise RuleFileError(
                f"safety check: {rule.id} should fire a critical {rule.topic} card on "
                f"[{given}{'; mentions ' + ', '.join(way[1]) if way[1] else ''}] alone, "
                f"but the cards are {topics}"
            )


def check_clinical_safety(ruleset: RuleSet, terminology: Terminology) -> None:
    """Raises ``RuleFileError`` naming the rule or concept that breaks a principle."""
    base = clean_answers(terminology)
    for rule in ruleset.rules:
        if rule.indicator == "critical" and not rule.self_care:
            _check_critical_rule(ruleset, rule, base)
    for code, concept in sorted(terminology.questions().items()):
        if not concept.phrases:
            continue
        result = _run(ruleset, _facts(base, ((), (code,), False, False)))
        if all(card["indicator"] == "info" for card in result.cards):
            raise RuleFileError(
                f"safety check: a free-text mention of {code} alone ends in a complete screen "
                f"(cards {[c['source']['topic']['code'] for c in result.cards]})"
            )
    result = _run(ruleset, _facts(base, ((), (), True, False)))
    if "screen-incomplete" not in {c["source"]["topic"]["code"] for c in result.cards}:
        raise RuleFileError(
            "safety check: unreadable free text does not say the screen is incomplete"
        )
