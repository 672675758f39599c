"""``conditions.holds`` (which rules fire, without their evidence) agrees with
``conditions.check(...).holds`` on every condition of the rule set: each rule's, each
card section's, and every sub-condition of theirs, for the facts of every clinical
vignette and for seeded random facts. The engine decides with ``holds`` first and
gathers evidence with ``check`` only for the rules that fire."""

from __future__ import annotations

import random
from collections.abc import Iterator

from service import fhir
from service.engine.conditions import check, concepts_of, holds
from service.engine.model import NO, UNKNOWN, YES, All, Answer, AnyOf, Condition, Facts, Not
from service.knowledge import Knowledge
from testkit.casekit import load_cases

CASES = load_cases()


def conditions_of(knowledge: Knowledge) -> list[Condition]:
    found: list[Condition] = []

    def walk(condition: Condition) -> None:
        found.append(condition)
        if isinstance(condition, Not):
            walk(condition.child)
        elif isinstance(condition, All | AnyOf):
            for child in condition.children:
                walk(child)

    for rule in knowledge.ruleset.rules:
        walk(rule.condition)
        for section in rule.card.sections:
            walk(section.when)
    return found


def vignette_facts(knowledge: Knowledge) -> Iterator[Facts]:
    library, vocabulary = knowledge.library, knowledge.vocabulary
    for case in CASES:
        parsed = fhir.parse_questionnaire_response(case.qr)
        questionnaire, _ = fhir.resolve_questionnaire(parsed, library, None)
        form = library.index_of(questionnaire) if questionnaire is not None else None
        yield fhir.extract_facts(parsed, form, vocabulary, reader=knowledge.reader)


def random_facts(knowledge: Knowledge, seed: int) -> Facts:
    rng = random.Random(seed)
    concepts = sorted(set().union(*(concepts_of(c) for c in conditions_of(knowledge))))
    values: list[str | int | float] = [YES, NO, UNKNOWN, "other-code", 0, 3, 7, 7.5, 10, 55, 80]
    answers = {
        concept: Answer(concept, rng.choice(values), concept, concept, None, "random")
        for concept in concepts
        if rng.random() < 0.6
    }
    return Facts(
        answers=answers,
        disabled=frozenset(c for c in concepts if c not in answers and rng.random() < 0.3),
        questionnaire_known=rng.random() < 0.8,
        status=rng.choice(["completed", "in-progress"]),
        unread_text=("7.1",) if rng.random() < 0.2 else (),
    )


def test_the_vignettes_are_all_here() -> None:
    assert len(CASES) >= 170


def test_holds_agrees_with_check_on_every_vignette(knowledge: Knowledge) -> None:
    conditions = conditions_of(knowledge)
    compared = held = 0
    for facts in vignette_facts(knowledge):
        for condition in conditions:
            expected = check(condition, facts).holds
            assert holds(condition, facts) is expected, (condition, facts.answers)
            compared += 1
            held += expected
    assert 0 < held < compared  # both verdicts were exercised


def test_holds_agrees_with_check_on_random_facts(knowledge: Knowledge) -> None:
    conditions = conditions_of(knowledge)
    for seed in range(300):
        facts = random_facts(knowledge, seed)
        for condition in conditions:
            assert holds(condition, facts) is check(condition, facts).holds, (seed, condition)
