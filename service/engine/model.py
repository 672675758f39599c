"""The engine's vocabulary: frozen dataclasses, standard library only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Card indicators, most urgent first.
INDICATORS: tuple[str, ...] = ("critical", "warning", "info")
INDICATOR_RANK: Mapping[str, int] = {name: rank for rank, name in enumerate(INDICATORS)}

#: How soon to act, most urgent first (CLINICAL.md principle 8).
URGENCIES: tuple[str, ...] = ("emergency", "same-day", "soon", "routine", "self-care")
URGENCY_RANK: Mapping[str, int] = {name: rank for rank, name in enumerate(URGENCIES)}
#: Rules of this urgency are self-care guidance: shown only while no critical/warning fires.
SELF_CARE = "self-care"

#: Who reads the card (CLINICAL.md principle 9).
CLINICIAN = "clinician"
PATIENT = "patient"
VOICES: tuple[str, ...] = (CLINICIAN, PATIENT)

#: QuestionnaireResponse.status of a form still being filled in (principle 10).
IN_PROGRESS = "in-progress"

YES = "yes"
NO = "no"
UNKNOWN = "unknown"


def most_urgent(urgencies: tuple[str, ...] | list[str]) -> str:
    return min(urgencies, key=URGENCY_RANK.__getitem__)


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


#: answer_code of an Answer that stands for a free-text mention (never the patient's words)
FREE_TEXT = "free-text"
FREE_TEXT_UNCERTAIN = "free-text-uncertain"


@dataclass(frozen=True)
class Mention:
    """A red-flag concept found in the patient's own words (a free-text answer)."""

    concept: str
    #: the patient's words around the mention (their sentence, possibly shortened)
    quote: str
    link_id: str
    question: str
    #: the concept's display, e.g. "Saddle anaesthesia"
    concept_display: str
    #: True when the words are hedged ("maybe", "not sure"), conditional or about someone else
    uncertain: bool = False

    def as_answer(self) -> Answer:
        """The mention as evidence: answer_code says free text; the display quotes the words."""
        hedge = "; unsure" if self.uncertain else ""
        return Answer(
            concept=self.concept,
            value=YES,
            link_id=self.link_id,
            question=self.question,
            answer_code=FREE_TEXT_UNCERTAIN if self.uncertain else FREE_TEXT,
            display=f'"{self.quote}" (read as: {self.concept_display}{hedge})',
        )


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
    #: QuestionnaireResponse.status ("in-progress" while the form is being filled in)
    status: str = "completed"
    #: red-flag concepts found in free-text answers (negated mentions are not kept)
    mentions: tuple[Mention, ...] = ()
    #: linkIds of free-text answers that could not be read (too long, another language, ...)
    unread_text: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """Result of a condition: did it hold, and which answers / gaps made it so."""

    holds: bool
    evidence: tuple[Answer, ...] = ()
    missing: tuple[str, ...] = ()


# -- condition trees (evaluated by ``conditions.check``) --------------------------------


@dataclass(frozen=True)
class Predicate:
    op: str
    concepts: tuple[str, ...] = ()
    codes: frozenset[str] = frozenset()
    threshold: float | None = None


@dataclass(frozen=True)
class All:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    child: Condition


Condition = Predicate | All | AnyOf | Not


@dataclass(frozen=True)
class Section:
    """A paragraph of a card's detail, shown only when its condition holds."""

    when: Condition
    text: str
    #: the paragraph in the patient's voice (None: the clinician text serves both)
    patient: str | None = None


@dataclass(frozen=True)
class Text:
    """A card's words in one voice; ``detail`` is markdown with {placeholders}."""

    summary: str
    detail: str


@dataclass(frozen=True)
class CardTemplate:
    summary: str
    #: markdown with placeholders {evidence} {urgency} {missing} {notes} {sections}
    detail: str
    #: the topic's display, e.g. "Possible cauda equina syndrome"
    topic_display: str
    #: the patient's voice (None: the clinician text serves both)
    patient: Text | None = None
    links: tuple[Mapping[str, Any], ...] = ()
    #: CDS Hooks suggestions; "{subject}" in a resource is replaced by the QR subject
    suggestions: tuple[Mapping[str, Any], ...] = ()
    selection_behavior: str | None = None
    override_reasons: tuple[Mapping[str, Any], ...] = ()
    sections: tuple[Section, ...] = ()

    def text(self, voice: str) -> Text:
        if voice == PATIENT and self.patient is not None:
            return self.patient
        return Text(self.summary, self.detail)


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
    #: order among rules of the same indicator and urgency (lower first)
    priority: int = 100
    #: emergency | same-day | soon | routine | self-care
    urgency: str = "routine"
    #: the guidance the rule reads: ({"label": ..., "url": ...}, ...)
    sources: tuple[Mapping[str, str], ...] = ()
    #: the rule file's family and description (shown on the rule's page)
    family: str = ""
    description: str = ""

    @property
    def self_care(self) -> bool:
        """Self-care rules are shown only when no critical/warning card fires."""
        return self.urgency == SELF_CARE


@dataclass(frozen=True)
class UrgencyLevel:
    """How one urgency level is said, per voice: the card's "How urgent" line."""

    code: str
    lines: Mapping[str, str]
    #: wording that states this level's timeline (load-time safety check)
    phrases: tuple[str, ...] = ()

    def line(self, voice: str) -> str:
        return self.lines.get(voice) or self.lines.get(CLINICIAN) or self.code


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    #: sorted: by indicator (critical first), urgency, priority, then id
    rules: tuple[Rule, ...]
    #: plain-language question for each concept (used to say what to ask)
    questions: Mapping[str, str] = field(default_factory=dict)
    topic_system: str = ""
    #: a human title, e.g. "Back-pain red-flag rules"
    title: str = ""
    description: str = ""
    #: the wording of each urgency level, by code
    urgencies: Mapping[str, UrgencyLevel] = field(default_factory=dict)
    #: added after a card's "How urgent" line when another finding set it, by voice
    raised_notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


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
    urgency: str = "routine"


@dataclass(frozen=True)
class Evaluation:
    #: CDS Hooks 2.0 card JSON, most urgent first
    cards: tuple[dict[str, Any], ...]
    findings: tuple[Finding, ...]
    #: e.g. "backpain-redflags 2.0.0"
    rules_version: str
    #: the most urgent finding's urgency (None when nothing fired)
    disposition: str | None = None
    voice: str = CLINICIAN
