"""The rule page (``GET /rules/{id}``) escapes everything it shows."""

from __future__ import annotations

from service.engine import CardTemplate, Predicate, Rule, RuleSet, Section, Text
from service.http.rule_page import condition_json, rule_html, rule_json
from service.knowledge import Knowledge

HOSTILE = '<script>alert("x")</script>'


def hostile_rule() -> tuple[RuleSet, Rule]:
    card = CardTemplate(
        summary=HOSTILE,
        detail=f"{HOSTILE} {{evidence}}",
        topic_display=HOSTILE,
        patient=Text(HOSTILE, HOSTILE),
        links=({"label": HOSTILE, "url": 'https://x.example/"><script>'},),
        sections=(Section(Predicate("answered-yes", ("a",)), HOSTILE),),
    )
    rule = Rule(
        "r",
        "1.0.0",
        "t",
        "warning",
        frozenset({"a"}),
        Predicate("choice-in", ("a",), codes=frozenset({HOSTILE})),
        card,
        sources=({"label": HOSTILE, "url": 'https://x.example/"onmouseover="x'},),
        description=HOSTILE,
    )
    ruleset = RuleSet("s", "1.0.0", (rule,), {"a": HOSTILE}, "urn:t", title=HOSTILE)
    return ruleset, rule


def test_everything_on_the_page_is_escaped() -> None:
    page = rule_html(*hostile_rule())
    assert "<script>" not in page
    assert '"onmouseover=' not in page and '"><script>' not in page
    assert "&lt;script&gt;" in page


def test_the_json_keeps_the_rule_file_shape(knowledge: Knowledge) -> None:
    ruleset = knowledge.ruleset
    rule = ruleset.rule("not-settling-with-rest")
    assert rule is not None
    data = rule_json(ruleset, rule, "https://cds.example/rules/not-settling-with-rest")
    hours = {"number-at-least": {"concepts": ["hours-since-onset"], "threshold": 72.0}}
    assert hours in data["when"]["any"][0]["all"]
    assert condition_json(Predicate("always")) == {"always": True}
    assert data["card"]["clinician"]["detail"].count("{urgency}") == 1
    assert data["sources"][0]["label"].startswith("Source text")
