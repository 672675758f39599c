"""In-process micro-benchmarks (no HTTP): the pure engine and the whole screen.

* ``evaluate()`` as the rule count grows 10 -> 100 -> 1,000 (synthetic rules, each
  reading three concepts; one rule in twenty fires, over ten topics).
* ``screen()`` (parse on the fast path, resolve the form, facts, rules, sha256)
  as the QuestionnaireResponse grows 10 -> 100 -> 1,000 answers, with the real rules.
* the phases of ``screen()`` for the realistic QR, to say where the time goes.
"""

from __future__ import annotations

import copy
import itertools
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from bench.stats import grows_linearly, growth_exponents
from service.engine import (
    NO,
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
    evaluate,
)

SIZES = (10, 100, 1000)
HOOK_INSTANCE = "5f0c3f7e-1111-4222-8333-444455556666"


def per_call_us(call: Callable[[], object], *, min_seconds: float = 0.2, batches: int = 5) -> float:
    """Median over ``batches`` of the mean microseconds per call (calibrated batch size)."""
    call()  # warm caches
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds / batches or loops >= 1_000_000:
            break
        loops *= 2
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(samples)


# -- synthetic rules -------------------------------------------------------------------


def _concepts(rule_index: int) -> tuple[str, str, str]:
    return (f"c{3 * rule_index}", f"c{3 * rule_index + 1}", f"c{3 * rule_index + 2}")


def synthetic_ruleset(rule_count: int, fire_every: int = 20) -> RuleSet:
    rules = []
    for i in range(rule_count):
        a, b, c = _concepts(i)
        condition = AnyOf(
            (
                All((Predicate("answered-yes", (a, b)), Not(Predicate("answered-no", (c,))))),
                Predicate("number-at-least", (c,), threshold=7.0),
            )
        )
        fires = i % fire_every == 0
        rules.append(
            Rule(
                id=f"synthetic-{i:05d}",
                version="1.0.0",
                topic=f"topic-{(i // fire_every) % 10}",
                indicator="warning" if fires else "info",
                concepts=frozenset((a, b, c)),
                condition=condition,
                card=CardTemplate(
                    summary=f"Synthetic finding {i}",
                    detail="{evidence}\n\n{urgency}",
                    topic_display=f"Topic {(i // fire_every) % 10}",
                ),
                priority=i,
            )
        )
    return RuleSet(name="synthetic", version="1.0.0", rules=tuple(rules), topic_system="urn:x")


def synthetic_facts(rule_count: int, fire_every: int = 20) -> Facts:
    answers: dict[str, Answer] = {}
    for i in range(rule_count):
        a, b, c = _concepts(i)
        fires = i % fire_every == 0
        for concept, value in ((a, YES if fires else NO), (b, NO), (c, YES if fires else NO)):
            answers[concept] = Answer(
                concept=concept,
                value=value,
                link_id=f"q-{concept}",
                question=f"Question about {concept}?",
                answer_code="LA33-6" if value == YES else "LA32-8",
                display="Yes" if value == YES else "No",
            )
    return Facts(answers=answers, disabled=frozenset(), questionnaire_known=True)


def rules_growth() -> dict[str, Any]:
    points = []
    for size in SIZES:
        ruleset, facts = synthetic_ruleset(size), synthetic_facts(size)
        cards = len(evaluate(ruleset, facts, hook_instance=HOOK_INSTANCE).cards)

        def call(r: RuleSet = ruleset, f: Facts = facts) -> object:
            return evaluate(r, f, hook_instance=HOOK_INSTANCE)

        us = per_call_us(call)
        points.append({"size": size, "us": us, "us_per_rule": us / size, "cards": cards})
    return _growth("rules", points)


# -- QR growth through screen() -----------------------------------------------------------


def _answered_leaves(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    leaves: list[dict[str, Any]] = []
    for item in items:
        if item.get("answer"):
            leaves.append({k: v for k, v in item.items() if k != "item"})
        leaves.extend(_answered_leaves(item.get("item", [])))
    return leaves


def count_answers(items: list[dict[str, Any]]) -> int:
    return len(_answered_leaves(items))


def qr_with_answers(base: Mapping[str, Any], answers: int) -> dict[str, Any]:
    """``base`` with its answered questions repeated (flat, cyclically) to ``answers`` answers.

    The form's linkIds are kept, so every answer is read against the bundled form and
    the most alarming answer per concept wins, as for repeated groups.
    """
    leaves = _answered_leaves(list(base.get("item", [])))
    if not leaves:
        raise ValueError("the base QuestionnaireResponse has no answered items")
    qr = copy.deepcopy(dict(base))
    qr["item"] = [copy.deepcopy(leaves[i % len(leaves)]) for i in range(answers)]
    return qr


_serial = itertools.count()


def never_seen(qr: Mapping[str, Any]) -> dict[str, Any]:
    """The same answers under a new id, as every call of the bench's load differs."""
    return {**qr, "id": f"bench-{next(_serial)}"}


def qr_growth(base_qr: Mapping[str, Any]) -> dict[str, Any]:
    from service.app import load_knowledge
    from service.cds.screen import Screener
    from service.config import Settings

    knowledge = load_knowledge(Settings())
    points = []
    for size in SIZES:
        qr = qr_with_answers(base_qr, size)
        # as the service screens: the fast validation path
        screener = Screener(knowledge, max_items=size + 10)

        def call(q: dict[str, Any] = qr, s: Screener = screener) -> object:
            return s.screen(never_seen(q), hook_instance=HOOK_INSTANCE)

        us = per_call_us(call)
        points.append({"size": size, "us": us, "us_per_answer": us / size})
    return _growth("answers", points)


def _growth(unit: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = [p["size"] for p in points]
    costs = [p["us"] for p in points]
    return {
        "unit": unit,
        "points": points,
        "cost_ratios": [later / earlier for earlier, later in itertools.pairwise(costs)],
        "growth_exponents": growth_exponents(sizes, costs),
        "linear": grows_linearly(sizes, costs),
    }


# -- phases of one screen -----------------------------------------------------------------


#: what a patient might write in the intake's free-text item (7.1): a negated and a
#: positive red-flag mention, read by the clinical-NLP pipeline (issue 12)
FREE_TEXT = (
    "No fever or chills. Since the deadlift I can't feel the toilet paper when I wipe, "
    "and my left calf feels weak on the stairs."
)


def with_free_text(qr: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The QR with ``text`` as the answer to the intake's "Anything else?" item."""
    worded = copy.deepcopy(dict(qr))
    worded["item"] = [i for i in worded.get("item", []) if i.get("linkId") != "7"]
    worded["item"].append(
        {"linkId": "7", "item": [{"linkId": "7.1", "answer": [{"valueString": text}]}]}
    )
    return worded


def screen_phases(qr: Mapping[str, Any]) -> dict[str, float]:
    """Microseconds per phase of ``screen()`` for this QR (bundled form, no fetch)."""
    from service import fhir
    from service.app import load_knowledge
    from service.cds.screen import Screener, canonical_sha256
    from service.config import Settings

    knowledge = load_knowledge(Settings())
    parser = fhir.ResponseParser()
    parsed = parser.parse(qr)
    questionnaire, _ = fhir.resolve_questionnaire(parsed, knowledge.library, None)
    form = knowledge.library.index_of(questionnaire) if questionnaire is not None else None
    reader = knowledge.reader
    facts = fhir.extract_facts(parsed, form, knowledge.vocabulary, reader=reader)
    fresh = Screener(knowledge)
    worded = with_free_text(qr, FREE_TEXT)
    worded_parsed = parser.parse(worded)
    return {
        "count_items": per_call_us(lambda: fhir.count_items(qr, 2000)),
        "parse (fast path)": per_call_us(lambda: parser.parse(qr)),
        "parse (fhir.resources, the reference)": per_call_us(
            lambda: fhir.parse_questionnaire_response(qr)
        ),
        "resolve questionnaire": per_call_us(
            lambda: fhir.resolve_questionnaire(parsed, knowledge.library, None)
        ),
        "extract facts": per_call_us(
            lambda: fhir.extract_facts(parsed, form, knowledge.vocabulary, reader=reader)
        ),
        f"extract facts, with {len(FREE_TEXT)} characters of free text read": per_call_us(
            lambda: fhir.extract_facts(worded_parsed, form, knowledge.vocabulary, reader=reader)
        ),
        "evaluate rules": per_call_us(
            lambda: evaluate(knowledge.ruleset, facts, hook_instance=HOOK_INSTANCE)
        ),
        "sha256 of canonical JSON": per_call_us(lambda: canonical_sha256(qr)),
        "screen() total, QR never seen": per_call_us(
            lambda: fresh.screen(never_seen(qr), hook_instance=HOOK_INSTANCE)
        ),
    }
