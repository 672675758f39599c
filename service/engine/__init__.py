"""The pure rules engine: facts in, findings and CDS Hooks cards out.

Imports only the standard library: no clock, no random uuids, no I/O.
"""

from service.engine.cards import CARD_NAMESPACE, card_uuid, evaluate, render
from service.engine.conditions import (
    PREDICATES,
    All,
    AnyOf,
    Condition,
    Not,
    Predicate,
    PredicateSpec,
    check,
    concepts_of,
)
from service.engine.evaluate import Decision, TopicGroup, decide
from service.engine.model import (
    INDICATOR_RANK,
    INDICATORS,
    NO,
    UNKNOWN,
    YES,
    Answer,
    CardTemplate,
    Evaluation,
    Facts,
    Finding,
    Outcome,
    Rule,
    RuleSet,
    Section,
)

__all__ = [
    "CARD_NAMESPACE",
    "INDICATORS",
    "INDICATOR_RANK",
    "NO",
    "PREDICATES",
    "UNKNOWN",
    "YES",
    "All",
    "Answer",
    "AnyOf",
    "CardTemplate",
    "Condition",
    "Decision",
    "Evaluation",
    "Facts",
    "Finding",
    "Not",
    "Outcome",
    "Predicate",
    "PredicateSpec",
    "Rule",
    "RuleSet",
    "Section",
    "TopicGroup",
    "card_uuid",
    "check",
    "concepts_of",
    "decide",
    "evaluate",
    "render",
]
