"""Condition trees: ``all`` / ``any`` / ``not`` over a declared vocabulary of predicates.

A predicate over several concepts holds when *any* of them satisfies it (so
``answered-yes`` over the cauda-equina ValueSet means "any CES answer is Yes"),
and its evidence is every answer that satisfied it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from service.engine.model import (
    IN_PROGRESS,
    NO,
    UNKNOWN,
    YES,
    All,
    Answer,
    Condition,
    Facts,
    Not,
    Outcome,
    Predicate,
)


@dataclass(frozen=True)
class PredicateSpec:
    """What a predicate needs, so rule files can be validated against it."""

    name: str
    description: str
    needs_concepts: bool = True
    needs_codes: bool = False
    needs_threshold: bool = False


_HOLDS_NOT = Outcome(holds=False)


def _matching(facts: Facts, concepts: tuple[str, ...], test: Callable[[Answer], bool]) -> Outcome:
    hits = tuple(
        answer
        for concept in concepts
        if (answer := facts.answers.get(concept)) is not None and test(answer)
    )
    return Outcome(holds=bool(hits), evidence=hits)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _answered_yes(p: Predicate, facts: Facts) -> Outcome:
    return _matching(facts, p.concepts, lambda a: a.value == YES)


def _answered_no(p: Predicate, facts: Facts) -> Outcome:
    return _matching(facts, p.concepts, lambda a: a.value == NO)


def _choice_in(p: Predicate, facts: Facts) -> Outcome:
    return _matching(facts, p.concepts, lambda a: isinstance(a.value, str) and a.value in p.codes)


def _number_at_least(p: Predicate, facts: Facts) -> Outcome:
    limit = p.threshold if p.threshold is not None else 0.0
    return _matching(facts, p.concepts, lambda a: _is_number(a.value) and float(a.value) >= limit)


def _number_below(p: Predicate, facts: Facts) -> Outcome:
    limit = p.threshold if p.threshold is not None else 0.0
    return _matching(facts, p.concepts, lambda a: _is_number(a.value) and float(a.value) < limit)


def _answered(p: Predicate, facts: Facts) -> Outcome:
    return _matching(facts, p.concepts, lambda a: a.value != UNKNOWN)


def _unanswered(p: Predicate, facts: Facts) -> Outcome:
    unknown: list[Answer] = []
    missing: list[str] = []
    for concept in p.concepts:
        answer = facts.answers.get(concept)
        if answer is None:
            missing.append(concept)
        elif answer.value == UNKNOWN:
            unknown.append(answer)
            missing.append(concept)
    return Outcome(holds=bool(missing), evidence=tuple(unknown), missing=tuple(missing))


def _mentioned(p: Predicate, facts: Facts) -> Outcome:
    wanted = frozenset(p.concepts)
    hits = tuple(m.as_answer() for m in facts.mentions if m.concept in wanted)
    return Outcome(holds=bool(hits), evidence=hits)


def _free_text_unread(p: Predicate, facts: Facts) -> Outcome:
    return Outcome(holds=bool(facts.unread_text))


def _questionnaire_unknown(p: Predicate, facts: Facts) -> Outcome:
    return Outcome(holds=not facts.questionnaire_known)


def _form_in_progress(p: Predicate, facts: Facts) -> Outcome:
    return Outcome(holds=facts.status == IN_PROGRESS)


def _always(p: Predicate, facts: Facts) -> Outcome:
    return Outcome(holds=True)


_IMPLEMENTATIONS: Mapping[str, Callable[[Predicate, Facts], Outcome]] = {
    "answered-yes": _answered_yes,
    "answered-no": _answered_no,
    "choice-in": _choice_in,
    "number-at-least": _number_at_least,
    "number-below": _number_below,
    "answered": _answered,
    "unanswered": _unanswered,
    "questionnaire-unknown": _questionnaire_unknown,
    "form-in-progress": _form_in_progress,
    "mentioned": _mentioned,
    "free-text-unread": _free_text_unread,
    "always": _always,
}

#: The declared vocabulary rule files may use.
PREDICATES: Mapping[str, PredicateSpec] = {
    spec.name: spec
    for spec in (
        PredicateSpec("answered-yes", "any of the concepts is answered Yes"),
        PredicateSpec("answered-no", "any of the concepts is answered No"),
        PredicateSpec("choice-in", "any of the concepts has one of the codes", needs_codes=True),
        PredicateSpec(
            "number-at-least", "any concept is a number >= threshold", needs_threshold=True
        ),
        PredicateSpec("number-below", "any concept is a number < threshold", needs_threshold=True),
        PredicateSpec("answered", "any of the concepts has an answer other than Unknown"),
        PredicateSpec(
            "unanswered",
            "any of the concepts is unanswered, Unknown or disabled by the form's logic",
        ),
        PredicateSpec(
            "questionnaire-unknown",
            "the QuestionnaireResponse's Questionnaire could not be resolved",
            needs_concepts=False,
        ),
        PredicateSpec(
            "form-in-progress",
            "the QuestionnaireResponse is still being filled in (status in-progress)",
            needs_concepts=False,
        ),
        PredicateSpec(
            "mentioned",
            "any of the concepts is mentioned in a free-text answer (not negated)",
        ),
        PredicateSpec(
            "free-text-unread",
            "some free-text answer could not be read (too long, another language, unreadable)",
            needs_concepts=False,
        ),
        PredicateSpec("always", "always holds", needs_concepts=False),
    )
}


def check(condition: Condition, facts: Facts) -> Outcome:
    """Evaluate a condition tree. Cost: one dictionary look-up per concept named."""
    if isinstance(condition, Predicate):
        return _IMPLEMENTATIONS[condition.op](condition, facts)
    if isinstance(condition, Not):
        inner = check(condition.child, facts)
        return Outcome(holds=not inner.holds)
    if isinstance(condition, All):
        outcomes = [check(child, facts) for child in condition.children]
        if not all(o.holds for o in outcomes):
            return _HOLDS_NOT
        return _merge(outcomes)
    outcomes = [o for o in (check(child, facts) for child in condition.children) if o.holds]
    if not outcomes:
        return _HOLDS_NOT
    return _merge(outcomes)


def holds(condition: Condition, facts: Facts) -> bool:
    """``check(condition, facts).holds``, without gathering evidence: stops at the first
    child that decides (most rules do not fire; ``check`` runs only for those that do)."""
    if isinstance(condition, Predicate):
        return _IMPLEMENTATIONS[condition.op](condition, facts).holds
    if isinstance(condition, Not):
        return not holds(condition.child, facts)
    if isinstance(condition, All):
        return all(holds(child, facts) for child in condition.children)
    return any(holds(child, facts) for child in condition.children)


def _merge(outcomes: list[Outcome]) -> Outcome:
    evidence: dict[tuple[str, str], Answer] = {}
    missing: dict[str, None] = {}
    for outcome in outcomes:
        for answer in outcome.evidence:
            evidence.setdefault((answer.concept, answer.link_id), answer)
        for concept in outcome.missing:
            missing.setdefault(concept, None)
    return Outcome(holds=True, evidence=tuple(evidence.values()), missing=tuple(missing))


def concepts_of(condition: Condition) -> frozenset[str]:
    """Every concept a condition tree reads."""
    if isinstance(condition, Predicate):
        return frozenset(condition.concepts)
    if isinstance(condition, Not):
        return concepts_of(condition.child)
    found: set[str] = set()
    for child in condition.children:
        found |= concepts_of(child)
    return frozenset(found)
