"""Which rules fire: facts in, one ``Decision`` out. Pure and deterministic.

Principles (CLINICAL.md): one card per topic with evidence merged; critical >
warning > info, then most urgent first; self-care rules are only looked at
while no critical or warning rule fires; the most urgent finding sets the
disposition of the whole answer. Cost: one pass over the rules, each reading
the concepts it names. Rendering the decision as cards is ``cards.py``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.engine.conditions import check, holds
from service.engine.model import (
    INDICATOR_RANK,
    URGENCY_RANK,
    Facts,
    Outcome,
    Rule,
    RuleSet,
    most_urgent,
)

_ALARMING = frozenset({"critical", "warning"})


@dataclass(frozen=True)
class TopicGroup:
    """Everything that fired for one card topic; the first rule's template makes the card."""

    rules: tuple[Rule, ...]
    outcomes: tuple[Outcome, ...]

    @property
    def primary(self) -> Rule:
        return self.rules[0]

    @property
    def indicator(self) -> str:
        return min((r.indicator for r in self.rules), key=INDICATOR_RANK.__getitem__)

    @property
    def urgency(self) -> str:
        return most_urgent([r.urgency for r in self.rules])


@dataclass(frozen=True)
class Decision:
    """The fired rules of one screen, grouped by topic, most urgent first."""

    groups: tuple[TopicGroup, ...]

    @property
    def disposition(self) -> str | None:
        """The most urgent finding's urgency: no card may state a slower timeline."""
        return most_urgent([g.urgency for g in self.groups]) if self.groups else None


def decide(ruleset: RuleSet, facts: Facts) -> Decision:
    fired = _fire(ruleset, facts, self_care=False)
    if not any(rule.indicator in _ALARMING for rule, _ in fired):
        fired += _fire(ruleset, facts, self_care=True)
    return Decision(groups=_group_by_topic(fired))


def _fire(ruleset: RuleSet, facts: Facts, *, self_care: bool) -> list[tuple[Rule, Outcome]]:
    fired = []
    for rule in ruleset.rules:
        if rule.self_care == self_care and holds(rule.condition, facts):
            fired.append((rule, check(rule.condition, facts)))
    return fired


def _group_by_topic(fired: Sequence[tuple[Rule, Outcome]]) -> tuple[TopicGroup, ...]:
    """Rules arrive most urgent first (the rule set is sorted), so each group's first
    rule is its most urgent one and renders the card."""
    by_topic: dict[str, list[tuple[Rule, Outcome]]] = {}
    for rule, outcome in fired:
        by_topic.setdefault(rule.topic, []).append((rule, outcome))
    groups = [
        TopicGroup(rules=tuple(r for r, _ in items), outcomes=tuple(o for _, o in items))
        for items in by_topic.values()
    ]
    groups.sort(key=_urgency_order)
    return tuple(groups)


def _urgency_order(group: TopicGroup) -> tuple[int, int, int]:
    indicator, urgency = INDICATOR_RANK[group.indicator], URGENCY_RANK[group.urgency]
    return (indicator, urgency, group.primary.priority)
