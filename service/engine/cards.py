"""A ``Decision`` rendered as CDS Hooks 2.0 cards. Pure and deterministic.

One card per topic, evidence merged; card and suggestion uuids are uuid5 of the
hookInstance and the rule id, so the same call gives the same cards. The text
speaks in one voice (clinician or patient); the machine provenance (rule ids
and versions, linkIds, answer codes) goes in the card's ``extension``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from service.engine.conditions import check
from service.engine.evaluate import Decision, TopicGroup, decide
from service.engine.model import (
    CLINICIAN,
    PATIENT,
    VOICES,
    Answer,
    Evaluation,
    Facts,
    Finding,
    RuleSet,
)
from service.engine.text import (
    ask_order,
    evidence_list,
    fill,
    missing_list,
    notes_list,
    urgency_line,
)

#: Fixed namespace of card and suggestion uuids (uuid5 of hookInstance + rule id).
CARD_NAMESPACE = uuid.UUID("0b1f6c52-8a7e-5d0e-9c43-6b2a7f1d9e25")
#: The card ``extension`` key holding the provenance (CDS Hooks 2.0: reverse-domain names).
PROVENANCE_EXTENSION = "dev.backpain-cds.provenance"


def card_uuid(hook_instance: str, rule_id: str) -> str:
    return str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:{rule_id}"))


def evaluate(
    ruleset: RuleSet,
    facts: Facts,
    *,
    hook_instance: str,
    voice: str = CLINICIAN,
    base_url: str = "",
) -> Evaluation:
    """Decide which rules fire, then render one card per topic.

    ``voice``: "clinician" (EHR hooks) or "patient" (the intake hook and portal).
    ``base_url``: the service's public URL; ``source.url`` is ``<base_url>/rules/<id>``
    (left out when empty).
    """
    decision = decide(ruleset, facts)
    return render(
        ruleset, decision, facts, hook_instance=hook_instance, voice=voice, base_url=base_url
    )


def render(
    ruleset: RuleSet,
    decision: Decision,
    facts: Facts,
    *,
    hook_instance: str,
    voice: str = CLINICIAN,
    base_url: str = "",
) -> Evaluation:
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {VOICES}, not {voice!r}")
    cards: list[dict[str, Any]] = []
    findings: list[Finding] = []
    disposition = decision.disposition
    for group in decision.groups:
        card, group_findings = _render(
            ruleset, group, facts, hook_instance, voice, base_url, disposition or group.urgency
        )
        cards.append(card)
        findings.extend(group_findings)
    return Evaluation(
        cards=tuple(cards),
        findings=tuple(findings),
        rules_version=ruleset.label,
        disposition=disposition,
        voice=voice,
    )


def _render(
    ruleset: RuleSet,
    group: TopicGroup,
    facts: Facts,
    hook_instance: str,
    voice: str,
    base_url: str,
    disposition: str,
) -> tuple[dict[str, Any], list[Finding]]:
    primary = group.primary
    template = primary.card
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
            text = section.patient if voice == PATIENT and section.patient else section.text
            section_texts.append(text.strip())
            for answer in outcome.evidence:
                evidence.setdefault((answer.concept, answer.link_id), answer)
    answers = tuple(evidence.values())
    ordered_missing = ask_order(ruleset, missing, frozenset(r.id for r in group.rules))

    findings = [
        Finding(
            rule_id=rule.id,
            rule_version=rule.version,
            topic=rule.topic,
            indicator=rule.indicator,
            card_uuid=uuid_,
            evidence=outcome.evidence if rule is not primary else answers,
            missing=outcome.missing,
            urgency=rule.urgency,
        )
        for rule, outcome in zip(group.rules, group.outcomes, strict=True)
    ]
    words = template.text(voice)
    detail = fill(
        words.detail,
        {
            "evidence": evidence_list(answers, ruleset),
            "urgency": urgency_line(ruleset, group.urgency, disposition, voice),
            "missing": missing_list(ruleset, ordered_missing, facts, voice),
            "notes": notes_list(facts.notes),
            "sections": "\n\n".join(section_texts),
        },
    )
    source: dict[str, Any] = {
        "label": f"{ruleset.title} ({ruleset.label})" if ruleset.title else ruleset.label
    }
    if base_url:
        source["url"] = f"{base_url.rstrip('/')}/rules/{primary.id}"
    source["topic"] = {
        "system": ruleset.topic_system,
        "code": primary.topic,
        "display": template.topic_display,
    }
    card: dict[str, Any] = {
        "uuid": uuid_,
        "summary": words.summary,
        "detail": detail,
        "indicator": group.indicator,
        "source": source,
    }
    if template.suggestions and voice == CLINICIAN:
        card["suggestions"] = [
            _suggestion(s, hook_instance, primary.id, facts.subject) for s in template.suggestions
        ]
        card["selectionBehavior"] = template.selection_behavior or "at-most-one"
    if template.override_reasons:
        card["overrideReasons"] = [dict(reason) for reason in template.override_reasons]
    if template.links:
        card["links"] = [dict(link) for link in template.links]
    card["extension"] = {
        PROVENANCE_EXTENSION: _provenance(
            ruleset, group, answers, ordered_missing, disposition, voice
        )
    }
    return card, findings


def _provenance(
    ruleset: RuleSet,
    group: TopicGroup,
    answers: tuple[Answer, ...],
    missing: list[str],
    disposition: str,
    voice: str,
) -> dict[str, Any]:
    return {
        "ruleSet": {"name": ruleset.name, "version": ruleset.version},
        "rules": [
            {"id": r.id, "version": r.version, "indicator": r.indicator, "urgency": r.urgency}
            for r in group.rules
        ],
        "urgency": group.urgency,
        "disposition": disposition,
        "voice": voice,
        "evidence": [_answer_json(a) for a in answers],
        "missing": missing,
    }


def _answer_json(answer: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {"linkId": answer.link_id, "concept": answer.concept}
    out["value"] = answer.value
    if answer.answer_code is not None:
        out["code"] = answer.answer_code
    return out


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
    if type(value) is str:  # most leaves: no abstract-class checks for them
        return subject if value == "{subject}" else value
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
