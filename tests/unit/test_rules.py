"""Rule files: loaded, validated, and every mistake names the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from service import PROJECT_ROOT
from service.fhir import validate_resource
from service.knowledge import Knowledge
from service.knowledge.rule_files import load_ruleset
from service.knowledge.rule_schema import RuleFileError
from service.knowledge.terminology import ICD10CM, SNOMED, Terminology

RULES = PROJECT_ROOT / "rules"
FAMILIES = {
    "cauda-equina.yaml",
    "neurological.yaml",
    "sciatica.yaml",
    "systemic.yaml",
    "fracture.yaml",
    "persistence.yaml",
    "screen-incomplete.yaml",
    "self-care.yaml",
    "ruleset.yaml",
}


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return Terminology.load(PROJECT_ROOT / "terminology")


def test_one_file_per_family_and_all_topics(knowledge: Knowledge) -> None:
    assert {p.name for p in RULES.glob("*.yaml")} == FAMILIES
    assert knowledge.ruleset.label == "backpain-redflags 2.0.0"
    assert {r.topic for r in knowledge.ruleset.rules} == set(knowledge.terminology.topics())


def test_standard_codes_in_rules_are_documented_with_their_source(
    terminology: Terminology,
) -> None:
    documented = {(m.system, m.code): m for m in terminology.mappings}
    seen = 0
    for path in RULES.glob("*.yaml"):
        text = yaml.safe_load(path.read_text())
        for coding in _codings(text):
            if coding.get("system") in {SNOMED, "http://loinc.org", ICD10CM}:
                mapping = documented.get((coding["system"], coding["code"]))
                assert mapping is not None, (path, coding)
                assert mapping.source and coding.get("display") == mapping.display, coding
                seen += 1
    assert seen >= 2


def test_an_undocumented_standard_code_in_a_rule_stops_loading(
    tmp_path: Path, terminology: Terminology
) -> None:
    def edit(data: dict) -> None:  # type: ignore[type-arg]
        action = data["rules"][0]["card"]["suggestions"][0]["actions"][0]
        action["resource"]["code"]["coding"][0]["code"] = "89362005"

    broken = _broken(tmp_path, "cauda-equina.yaml", edit)
    with pytest.raises(RuleFileError, match=r"cauda-equina\.yaml.*suggestions\[0\].*89362005"):
        load_ruleset(broken, terminology)


def _codings(node: object) -> list[dict]:
    if isinstance(node, dict):
        found = [node] if "system" in node and "code" in node else []
        return found + [c for v in node.values() for c in _codings(v)]
    if isinstance(node, list):
        return [c for v in node for c in _codings(v)]
    return []


def _broken(tmp_path: Path, name: str, edit) -> Path:  # type: ignore[no-untyped-def]
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    data = yaml.safe_load((target / name).read_text())
    edit(data)
    (target / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return target


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"].update(summary="x" * 140),
            "rules[0].card.summary",
        ),
        ("sciatica.yaml", lambda d: d["rules"][0].update(indicator="urgent"), "rules[0].indicator"),
        ("sciatica.yaml", lambda d: d["rules"][0].update(topic="back-ache"), "rules[0].topic"),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0].update(when={"answered-maybe": "fever"}),
            "answered-maybe",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0].update(when={"answered-yes": "fever"}),
            "rules[0].when",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0].update(when={"answered-yes": "back-ache"}),
            "back-ache",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0].update(
                when={"choice-in": {"concept": "pain-radiation-extent", "codes": ["ankle"]}}
            ),
            "rules[0].when.choice-in.codes",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"].update(detail="no placeholders"),
            "rules[0].card.detail",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"].update(overrideReasons=[]),
            "overrideReasons",
        ),
        ("sciatica.yaml", lambda d: d["rules"][0].update(unexpected=1), "rules[0].unexpected"),
        ("sciatica.yaml", lambda d: d.update(version="3.0.0"), "disagree"),
        (
            "cauda-equina.yaml",
            lambda d: d["rules"][0].update(indicator="warning", urgency="same-day"),
            "critical",
        ),
        ("sciatica.yaml", lambda d: d["rules"][0]["card"].pop("patient"), "rules[0].card.patient"),
        ("sciatica.yaml", lambda d: d["rules"][0].pop("urgency"), "rules[0].urgency"),
        ("sciatica.yaml", lambda d: d["rules"][0].update(urgency="whenever"), "rules[0].urgency"),
        ("sciatica.yaml", lambda d: d["rules"][0].update(urgency="emergency"), "takes urgency"),
        ("sciatica.yaml", lambda d: d["rules"][0].pop("sources"), "rules[0].sources"),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"].update(source={"url": "https://www.nice.org.uk/"}),
            "rules[0].card.source",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"].update(detail="{evidence} {rule}"),
            "unknown placeholder(s) ['rule']",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"]["patient"].update(detail="Go to a doctor."),
            "rules[0].card.patient",
        ),
        (
            "sciatica.yaml",
            lambda d: d["rules"][0]["card"]["patient"].update(
                detail="See a physio within days. {urgency}"
            ),
            "slower than the disposition",
        ),
        (
            "neurological.yaml",
            lambda d: d["rules"][1]["card"].update(
                summary="Neurological symptoms: see a doctor today."
            ),
            "'see a doctor today' (same-day)",
        ),
        (
            "self-care.yaml",
            lambda d: d["rules"][0].update(when={"always": True}),
            "self-care cards ['immediate-steps']",
        ),
        (
            "screen-incomplete.yaml",
            lambda d: d["rules"][0].update(
                when={
                    "unanswered": {
                        "valueSet": "https://fhir.backpain-cds.dev/ValueSet/red-flag-screen"
                    }
                }
            ),
            "not at most one quiet line",
        ),
        ("ruleset.yaml", lambda d: d["urgency"].pop("soon"), "wording missing for ['soon']"),
        ("ruleset.yaml", lambda d: d.update(version="2.0.1"), "disagree"),
        (
            "cauda-equina.yaml",
            lambda d: d["rules"][0]["card"]["suggestions"][0]["actions"][0]["resource"].update(
                subject="not a Reference"
            ),
            "rules[0].card.suggestions[0].actions[0].resource",
        ),
        (
            "screen-incomplete.yaml",
            lambda d: d["rules"][0].update(when={"questionnaire-unknown": True}),
            "unanswered",
        ),
    ],
)
def test_a_bad_rule_file_names_file_and_field(
    tmp_path: Path,
    terminology: Terminology,
    name: str,
    edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    rules_dir = _broken(tmp_path, name, edit)
    with pytest.raises(RuleFileError) as info:
        load_ruleset(rules_dir, terminology, validate_resource=validate_resource)
    assert message in str(info.value)
    if "safety check" not in str(info.value) and "disagree" not in str(info.value):
        assert name in str(info.value)


def test_unreadable_yaml_and_empty_folder(tmp_path: Path, terminology: Terminology) -> None:
    with pytest.raises(RuleFileError, match="no rule files"):
        load_ruleset(tmp_path, terminology)
    (tmp_path / "bad.yaml").write_text("rules: [unclosed\n")
    with pytest.raises(RuleFileError, match=r"ruleset\.yaml: missing"):
        load_ruleset(tmp_path, terminology)
    shutil.copy(RULES / "ruleset.yaml", tmp_path / "ruleset.yaml")
    with pytest.raises(RuleFileError, match=r"bad\.yaml: not readable YAML"):
        load_ruleset(tmp_path, terminology)
