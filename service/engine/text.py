"""A card's words: the placeholders of a card template, filled from one decision.

Plain text a clinician or a patient reads: no tables, no linkIds, no rule ids.
The machine provenance goes in the card's extension (``cards.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from service.engine.model import (
    INDICATOR_RANK,
    PATIENT,
    UNKNOWN,
    URGENCY_RANK,
    Answer,
    Facts,
    RuleSet,
)

#: The placeholders a card's detail may use, and what each becomes.
PLACEHOLDERS: Mapping[str, str] = {
    "evidence": "the answers that fired the card, one '- question: answer' line each",
    "urgency": "the 'How urgent' wording of the answer's most urgent finding (the disposition)",
    "missing": "the questions to ask now, most urgent first, each with why it is missing",
    "notes": "what reading the form noticed (form not found, answers against its logic)",
    "sections": "the card's sections whose condition holds, in order",
}

_BLANK_LINES = re.compile(r"\n{3,}")
_WHY_MISSING = {
    "unknown": {"clinician": "answered Unknown", "patient": "you were not sure"},
    "disabled": {"clinician": "skipped by the form's logic", "patient": "the form skipped it"},
    "absent": {"clinician": "not answered", "patient": "no answer"},
}


def fill(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return _BLANK_LINES.sub("\n\n", text).strip()


def _plain(text: str) -> str:
    return " ".join(text.split())


def evidence_list(answers: Iterable[Answer], ruleset: RuleSet) -> str:
    lines = []
    for answer in answers:
        question = _plain(answer.question) or ruleset.questions.get(answer.concept, "")
        answer_text = _plain(answer.display) or str(answer.value)
        separator = " " if question.endswith("?") else ": "
        lines.append(f"- {question}{separator}{answer_text}")
    return "\n".join(lines) if lines else "- None."


def urgency_line(ruleset: RuleSet, own: str, disposition: str, voice: str) -> str:
    """The "How urgent" words: the disposition's, never a slower timeline."""
    level = ruleset.urgencies.get(disposition)
    line = level.line(voice) if level is not None else disposition
    if URGENCY_RANK[own] > URGENCY_RANK[disposition]:
        note = ruleset.raised_notes.get(voice, "")
        line = f"{line} {note}".strip()
    return line


def ask_order(ruleset: RuleSet, missing: Iterable[str], exclude: frozenset[str]) -> list[str]:
    """Missing questions, most urgent first: by the most urgent rule (other than the
    ones in ``exclude``) that reads each, then in the order of the question list."""
    position = {concept: index for index, concept in enumerate(ruleset.questions)}
    last = (len(URGENCY_RANK), len(INDICATOR_RANK), 1 << 30)

    def key(concept: str) -> tuple[tuple[int, int, int], int, str]:
        ranks = [
            (URGENCY_RANK[rule.urgency], INDICATOR_RANK[rule.indicator], rule.priority)
            for rule in ruleset.rules
            if rule.id not in exclude and concept in rule.concepts
        ]
        return min(ranks, default=last), position.get(concept, len(position)), concept

    return sorted(dict.fromkeys(missing), key=key)


def missing_list(ruleset: RuleSet, ordered: Iterable[str], facts: Facts, voice: str) -> str:
    lines = []
    for concept in ordered:
        question = ruleset.questions.get(concept, concept)
        answer = facts.answers.get(concept)
        if answer is not None and answer.value == UNKNOWN:
            why = "unknown"
        elif concept in facts.disabled:
            why = "disabled"
        else:
            why = "absent"
        reason = _WHY_MISSING[why][PATIENT if voice == PATIENT else "clinician"]
        lines.append(f"- {question} ({reason})")
    return "\n".join(lines)


def notes_list(notes: Iterable[str]) -> str:
    return "\n".join(f"- {note}" for note in notes)
