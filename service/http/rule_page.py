"""What ``GET /rules/{rule-id}`` says about a rule: the page a card's ``source.url``
points at. What the rule reads, when it fires, its card text in both voices, its
sources and version; as escaped HTML for people, or as JSON."""

from __future__ import annotations

from html import escape
from typing import Any

from service.engine import PREDICATES, All, AnyOf, Condition, Not, Predicate, Rule, RuleSet


def condition_json(condition: Condition) -> Any:
    """The condition tree in the rule file's own shape."""
    if isinstance(condition, All):
        return {"all": [condition_json(c) for c in condition.children]}
    if isinstance(condition, AnyOf):
        return {"any": [condition_json(c) for c in condition.children]}
    if isinstance(condition, Not):
        return {"not": condition_json(condition.child)}
    if not PREDICATES[condition.op].needs_concepts:
        return {condition.op: True}
    arg: dict[str, Any] = {"concepts": list(condition.concepts)}
    if condition.codes:
        arg["codes"] = sorted(condition.codes)
    if condition.threshold is not None:
        arg["threshold"] = condition.threshold
    return {condition.op: arg}


def rule_json(ruleset: RuleSet, rule: Rule, url: str) -> dict[str, Any]:
    card = rule.card
    patient = card.text("patient")
    return {
        "id": rule.id,
        "version": rule.version,
        "url": url,
        "ruleSet": {"name": ruleset.name, "version": ruleset.version, "title": ruleset.title},
        "family": rule.family,
        "description": rule.description,
        "topic": {
            "system": ruleset.topic_system,
            "code": rule.topic,
            "display": card.topic_display,
        },
        "indicator": rule.indicator,
        "urgency": rule.urgency,
        "priority": rule.priority,
        "reads": [
            {"concept": concept, "question": ruleset.questions.get(concept, concept)}
            for concept in sorted(rule.concepts)
        ],
        "when": condition_json(rule.condition),
        "card": {
            "clinician": {"summary": card.summary, "detail": card.detail},
            "patient": {"summary": patient.summary, "detail": patient.detail},
            "sections": [
                {"when": condition_json(s.when), "text": s.text, "patient": s.patient or s.text}
                for s in card.sections
            ],
            "links": [dict(link) for link in card.links],
            "suggestions": [str(s.get("label", "")) for s in card.suggestions],
            "overrideReasons": [dict(reason) for reason in card.override_reasons],
        },
        "sources": [dict(source) for source in rule.sources],
    }


def _describe(condition: Condition, ruleset: RuleSet) -> str:
    """The condition as nested HTML lists, in words."""
    if isinstance(condition, All | AnyOf):
        word = "all of" if isinstance(condition, All) else "any of"
        items = "".join(f"<li>{_describe(c, ruleset)}</li>" for c in condition.children)
        return f"{word}:<ul>{items}</ul>"
    if isinstance(condition, Not):
        return f"not:<ul><li>{_describe(condition.child, ruleset)}</li></ul>"
    assert isinstance(condition, Predicate)
    text = escape(PREDICATES[condition.op].description)
    if condition.codes:
        text += " (" + ", ".join(f"<code>{escape(c)}</code>" for c in sorted(condition.codes)) + ")"
    if condition.threshold is not None:
        text += f" (threshold {condition.threshold:g})"
    if not condition.concepts:
        return text
    items = "".join(
        f"<li>{escape(ruleset.questions.get(c, c))} <code>{escape(c)}</code></li>"
        for c in condition.concepts
    )
    return f"{text}:<ul>{items}</ul>"


def _voice(title: str, summary: str, detail: str) -> str:
    return (
        f"<h3>{escape(title)}</h3><p><strong>{escape(summary)}</strong></p>"
        f"<pre>{escape(detail.strip())}</pre>"
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#111}pre{white-space:pre-wrap;background:#f4f4f4;padding:.75rem}"
    "code{background:#f4f4f4}dt{font-weight:bold}"
)


def rule_html(ruleset: RuleSet, rule: Rule) -> str:
    data = rule_json(ruleset, rule, "")
    card = rule.card
    sources = "".join(
        f'<li><a href="{escape(s["url"])}">{escape(s["label"])}</a></li>'
        if s.get("url")
        else f"<li>{escape(s['label'])}</li>"
        for s in rule.sources
    )
    links = "".join(
        f'<li><a href="{escape(str(link["url"]))}">{escape(str(link["label"]))}</a></li>'
        for link in card.links
    )
    sections = "".join(
        f"<li>When {_describe(s.when, ruleset)}<pre>{escape(s.text.strip())}</pre>"
        f"<p>Patient:</p><pre>{escape((s.patient or s.text).strip())}</pre></li>"
        for s in card.sections
    )
    facts = [
        ("Rule", f"<code>{escape(rule.id)}</code>, version {escape(rule.version)}"),
        ("Rule set", escape(f"{ruleset.title} ({ruleset.label})")),
        ("Card topic", f"{escape(card.topic_display)} <code>{escape(rule.topic)}</code>"),
        ("Indicator", escape(rule.indicator)),
        ("Urgency", escape(rule.urgency)),
        ("Family", escape(rule.family)),
    ]
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(card.topic_display)}: rule {escape(rule.id)}</title>"
        f"<style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(card.topic_display)}</h1>"
        f"<p>{escape(str(data['description']))}</p><dl>{rows}</dl>"
        f"<h2>When it fires</h2>{_describe(rule.condition, ruleset)}"
        "<h2>Card text</h2><p>Placeholders in braces are filled from the answers: "
        "<code>{evidence}</code> the answers that fired the card, <code>{urgency}</code> "
        "how urgent (the most urgent finding of the whole answer), <code>{missing}</code> "
        "the questions to ask.</p>"
        + _voice("For the clinician (EHR hooks)", card.summary, card.detail)
        + _voice("For the patient (intake hook and portal)", *_patient(rule))
        + (f"<h3>Sections</h3><ul>{sections}</ul>" if sections else "")
        + f"<h2>Sources</h2><ul>{sources}</ul>"
        + (f"<h2>Guidance</h2><ul>{links}</ul>" if links else "")
        + "</main></body></html>"
    )


def _patient(rule: Rule) -> tuple[str, str]:
    text = rule.card.text("patient")
    return text.summary, text.detail
