"""The engine's vocabulary: frozen dataclasses, standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.engine.conditions import Condition

#: Card indicators, most urgent first.
INDICATORS: tuple[str, ...] = ("critical", "warning", "info")
INDICATOR_RANK: Mapping[str, int] = {name: rank for rank, name in enumerate(INDICATORS)}

YES = "yes"
NO = "no"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    """One answer, already translated into the local vocabulary."""

    concept: str
    #: "yes" | "no" | "unknown" for yes/no concepts; the choice code; numbers as numbers.
    value: str | int | float
    link_id: str
    question: str
    answer_code: str | None
    display: str


@dataclass(frozen=True)
class Facts:
    """What a QuestionnaireResponse says, by concept code.

    When a concept is answered in several places (repeats, repeated groups, two
    forms), ``answers`` keeps the most alarming answer: yes > unknown > no; for
    ordered choices the most severe choice; for numbers the largest.
    """

    answers: Mapping[str, Answer]
    #: concepts whose item was disabled by enableWhen and carried no answer
    disabled: frozenset[str]
    #: False when the QuestionnaireResponse's Questionnaire could not be resolved
    questionnaire_known: bool
    #: human-readable notes for the incomplete-screen card
    notes: tuple[str, ...] = ()
    #: the QuestionnaireResponse subject reference (used in suggested resources)
    subject: str | None = None


@dataclass(frozen=True)
class Outcome:
    """Result of a condition: did it hold, and which answers / gaps made it so."""

    holds: bool
    evidence: tuple[Answer, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    """A paragraph of a card's detail, shown only when its condition holds."""

    when: Condition
    text: str


@dataclass(frozen=True)
class CardTemplate:
    summary: str
    #: markdown with placeholders {evidence} {rule} and optionally {missing} {notes} {sections}
    detail: str
    #: the topic's display, e.g. "Possible cauda equina syndrome"
    topic_display: str
    source_url: str
    links: tuple[Mapping[str, Any], ...] = ()
    #: CDS Hooks suggestions; "{subject}" in a resource is replaced by the QR subject
    suggestions: tuple[Mapping[str, Any], ...] = ()
    selection_behavior: str | None = None
    override_reasons: tuple[Mapping[str, Any], ...] = ()
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    version: str
    topic: str
    indicator: str
    #: the local concept codes the rule reads (expanded from its ValueSets)
    concepts: frozenset[str]
    condition: Condition
    card: CardTemplate
    #: self-care rules are shown only when no critical/warning card fires
    self_care: bool = False
    #: order among rules of the same indicator (lower first)
    priority: int = 100


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    #: sorted: by indicator (critical first), then priority, then id
    rules: tuple[Rule, ...]
    #: plain-language question for each concept (used to say what to ask)
    questions: Mapping[str, str] = field(default_factory=dict)
    topic_system: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Finding:
    rule_id: str
    rule_version: str
    topic: str
    indicator: str
    card_uuid: str
    evidence: tuple[Answer, ...]
    #: concepts the rule found unanswered / unknown / disabled
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    #: CDS Hooks 2.0 card JSON, ordered critical > warning > info
    cards: tuple[dict[str, Any], ...]
    findings: tuple[Finding, ...]
    #: e.g. "backpain-redflags 1.0.0"
    rules_version: str
