"""A ``Decision`` rendered as CDS Hooks 2.0 cards. Pure and deterministic.

One card per topic, evidence merged; card and suggestion uuids are uuid5 of the
hookInstance and the rule id, so the same call gives the same cards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from service.engine.conditions import check
from service.engine.evaluate import Decision, TopicGroup, decide
from service.engine.model import UNKNOWN, Answer, Evaluation, Facts, Finding, RuleSet

#: Fixed namespace of card and suggestion uuids (uuid5 of hookInstance + rule id).
CARD_NAMESPACE = uuid.UUID("0b1f6c52-8a7e-5d0e-9c43-6b2a7f1d9e25")

_BLANK_LINES = re.compile(r"\n{3,}")


def card_uuid(hook_instance: str, rule_id: str) -> str:
    return str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:{rule_id}"))


def evaluate(ruleset: RuleSet, facts: Facts, *, hook_instance: str) -> Evaluation:
    """Decide which rules fire, then render one card per topic."""
    return render(ruleset, decide(ruleset, facts), facts, hook_instance=hook_instance)


def render(ruleset: RuleSet, decision: Decision, facts: Facts, *, hook_instance: str) -> Evaluation:
    cards: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for group in decision.groups:
        card, group_findings = _render(ruleset, group, facts, hook_instance)
        cards.append(card)
        findings.extend(group_findings)
    return Evaluation(cards=tuple(cards), findings=tuple(findings), rules_version=ruleset.label)


def _render(
    ruleset: RuleSet, group: TopicGroup, facts: Facts, hook_instance: str
) -> tuple[dict[str, Any], list[Finding]]:
    primary = group.primary
    template = primary.card
    indicator = group.indicator
    uuid_ = card_uuid(hook_instance, primary.id)

    evidence: dict[tuple[str, str], Answer] = {}
    missing: dict[str, None] = {}
    for outcome in group.outcomes:
        for answer in outcome.evidence:
            evidence.setdefault((answer.concept, answer.link_id), answer)
        missing.update(dict.fromkeys(outcome.missing))
    section_texts: list[str] = []
    for section in template.sections:
        outcome = check(section.when, facts)
        if outcome.holds:
            section_texts.append(section.text.strip())
            for answer in outcome.evidence:
                evidence.setdefault((answer.concept, answer.link_id), answer)

    findings = [
        Finding(
            rule_id=rule.id,
            rule_version=rule.version,
            topic=rule.topic,
            indicator=rule.indicator,
            card_uuid=uuid_,
            evidence=outcome.evidence if rule is not primary else tuple(evidence.values()),
            missing=outcome.missing,
        )
        for rule, outcome in zip(group.rules, group.outcomes, strict=True)
    ]
    rule_line = "; ".join(f"`{r.id}` version {r.version}" for r in group.rules)
    detail = _fill(
        template.detail,
        {
            "{evidence}": _evidence_markdown(tuple(evidence.values())),
            "{missing}": _missing_markdown(ruleset, tuple(missing), facts),
            "{notes}": "\n".join(f"- {note}" for note in facts.notes),
            "{sections}": "\n\n".join(section_texts),
            "{rule}": f"Rule {rule_line} of rule set {ruleset.label}.",
        },
    )
    card: dict[str, Any] = {
        "uuid": uuid_,
        "summary": template.summary,
        "detail": _BLANK_LINES.sub("\n\n", detail).strip(),
        "indicator": indicator,
        "source": {
            "label": f"Back-pain red-flag rules ({ruleset.label})",
            "url": template.source_url,
            "topic": {
                "system": ruleset.topic_system,
                "code": primary.topic,
                "display": template.topic_display,
            },
        },
    }
    if template.suggestions:
        card["suggestions"] = [
            _suggestion(s, hook_instance, primary.id, facts.subject) for s in template.suggestions
        ]
        card["selectionBehavior"] = template.selection_behavior or "at-most-one"
    if template.override_reasons:
        card["overrideReasons"] = [dict(reason) for reason in template.override_reasons]
    if template.links:
        card["links"] = [dict(link) for link in template.links]
    return card, findings


def _fill(text: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _evidence_markdown(evidence: tuple[Answer, ...]) -> str:
    if not evidence:
        return "_None: this card follows from the screen as a whole._"
    rows = ["| Question | Answer | linkId |", "|---|---|---|"]
    rows.extend(
        f"| {_cell(a.question)} | {_cell(a.display)} | `{_cell(a.link_id)}` |" for a in evidence
    )
    return "\n".join(rows)


def _missing_markdown(ruleset: RuleSet, missing: tuple[str, ...], facts: Facts) -> str:
    lines = []
    for concept in missing:
        question = ruleset.questions.get(concept, concept)
        answer = facts.answers.get(concept)
        if answer is not None and answer.value == UNKNOWN:
            why = "answered Unknown"
        elif concept in facts.disabled:
            why = "skipped by the form's logic"
        else:
            why = "not answered"
        lines.append(f"- {question} (`{concept}`: {why})")
    return "\n".join(lines)


def _suggestion(
    template: Mapping[str, Any], hook_instance: str, rule_id: str, subject: str | None
) -> dict[str, Any]:
    suggestion: dict[str, Any] = {
        key: _with_subject(value, subject) for key, value in template.items() if key != "id"
    }
    suggestion["uuid"] = str(
        uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:{rule_id}:{template['id']}")
    )
    return suggestion


def _with_subject(value: Any, subject: str | None) -> Any:
    """Deep copy; "{subject}" becomes the QR subject, or the field holding it is dropped."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if subject is None and _mentions_subject(item):
                continue
            out[key] = _with_subject(item, subject)
        return out
    if isinstance(value, list | tuple):
        return [_with_subject(item, subject) for item in value]
    if value == "{subject}":
        return subject
    return value


def _mentions_subject(value: Any) -> bool:
    if value == "{subject}":
        return True
    if isinstance(value, Mapping):
        return any(item == "{subject}" for item in value.values())
    return False
