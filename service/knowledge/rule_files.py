"""Load ``rules/*.yaml`` into an engine ``RuleSet``; validate everything at start-up.

``rules/ruleset.yaml`` names the rule set (name, version, title) and says how
each urgency level is worded in each voice. Every other file is a rule file:
ruleset name and version, then rules with an id, a version, a topic (a
card-topic code of the local CodeSystem), an indicator, an urgency, the
concepts it reads (by ValueSet), its sources, a condition tree
(``all``/``any``/``not`` over the engine's declared predicates) and the card
template in two voices. Any mistake stops start-up with a ``RuleFileError``
naming the file and the field. ``rules/README.md`` is the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from service.engine import (
    INDICATOR_RANK,
    PREDICATES,
    URGENCY_RANK,
    All,
    AnyOf,
    CardTemplate,
    Condition,
    Not,
    Predicate,
    Rule,
    RuleSet,
    Section,
    Text,
    UrgencyLevel,
    concepts_of,
)
from service.knowledge.rule_schema import (
    RuleFileError,
    RuleFileSchema,
    RuleSetFileSchema,
    flatten_messages,
)
from service.knowledge.safety import check_safety
from service.knowledge.terminology import (
    ICD10CM,
    LOCAL_SYSTEM,
    LOINC,
    OVERRIDE_REASON_SYSTEM,
    SNOMED,
    Terminology,
)

ResourceValidator = Callable[[Mapping[str, Any], Path], None]


class _Builder:
    """Turns validated rule data into engine objects, resolving codes against terminology."""

    def __init__(self, terminology: Terminology, path: Path) -> None:
        self.terminology = terminology
        self.path = path
        self.questions = terminology.questions()

    def fail(self, where: str, message: str) -> RuleFileError:
        return RuleFileError(f"{self.path}: {where}: {message}")

    def concepts(self, refs: Iterable[str], where: str) -> frozenset[str]:
        found: set[str] = set()
        for i, ref in enumerate(refs):
            if ref in self.terminology.value_sets:
                found |= self.terminology.value_sets[ref]
            else:
                raise self.fail(f"{where}[{i}]", f"unknown ValueSet {ref!r}")
        return frozenset(found)

    def condition(self, raw: Mapping[str, Any], where: str) -> Condition:
        ((key, arg),) = raw.items()
        if key == "all":
            return All(tuple(self.condition(c, f"{where}.all[{i}]") for i, c in enumerate(arg)))
        if key == "any":
            return AnyOf(tuple(self.condition(c, f"{where}.any[{i}]") for i, c in enumerate(arg)))
        if key == "not":
            return Not(self.condition(arg, f"{where}.not"))
        return self.predicate(key, arg, f"{where}.{key}")

    def predicate(self, op: str, arg: Any, where: str) -> Predicate:
        spec = PREDICATES[op]
        if not spec.needs_concepts:
            if arg is not True:
                raise self.fail(where, "expected true")
            return Predicate(op)
        if isinstance(arg, str):
            arg = {"concept": arg}
        if not isinstance(arg, Mapping):
            raise self.fail(where, "expected a concept code or a mapping")
        allowed = {"concept", "concepts", "valueSet", "codes", "threshold"}
        extra = set(arg) - allowed
        if extra:
            raise self.fail(where, f"unknown field(s) {sorted(extra)}")
        concepts = self._predicate_concepts(arg, where)
        codes: frozenset[str] = frozenset()
        threshold: float | None = None
        if spec.needs_codes:
            codes = self._codes(arg.get("codes"), concepts, f"{where}.codes")
        elif "codes" in arg:
            raise self.fail(f"{where}.codes", f"{op} takes no codes")
        if spec.needs_threshold:
            threshold = arg.get("threshold")
            if not isinstance(threshold, int | float) or isinstance(threshold, bool):
                raise self.fail(f"{where}.threshold", "expected a number")
            threshold = float(threshold)
        elif "threshold" in arg:
            raise self.fail(f"{where}.threshold", f"{op} takes no threshold")
        return Predicate(op, concepts, codes, threshold)

    def _predicate_concepts(self, arg: Mapping[str, Any], where: str) -> tuple[str, ...]:
        given = [k for k in ("concept", "concepts", "valueSet") if k in arg]
        if len(given) != 1:
            raise self.fail(where, "give exactly one of concept, concepts, valueSet")
        if "valueSet" in arg:
            ref = arg["valueSet"]
            if ref not in self.terminology.value_sets:
                raise self.fail(f"{where}.valueSet", f"unknown ValueSet {ref!r}")
            codes = sorted(c for c in self.terminology.value_sets[ref] if c in self.questions)
            return tuple(codes)
        raw = [arg["concept"]] if "concept" in arg else arg["concepts"]
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{where}.concepts", "expected a non-empty list")
        for code in raw:
            if code not in self.questions:
                raise self.fail(where, f"{code!r} is not a question concept of {LOCAL_SYSTEM}")
        return tuple(raw)

    def _codes(self, raw: Any, concepts: tuple[str, ...], where: str) -> frozenset[str]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(where, "expected a non-empty list of answer codes")
        valid = {code for c in concepts for code in self.terminology.choices_of(c)}
        for code in raw:
            if code not in valid:
                raise self.fail(where, f"{code!r} is not an answer of {list(concepts)}")
        return frozenset(raw)


_STANDARD_SYSTEMS = frozenset({SNOMED, LOINC, ICD10CM})


def _check_standard_codes(
    node: Any,
    documented: frozenset[tuple[str, str]],
    fail: Callable[[str, str], RuleFileError],
    where: str,
) -> None:
    """Every SNOMED CT / LOINC / ICD-10-CM coding a rule emits must be one terminology/
    documents with its source (the ConceptMap); a wrong code is worse than none."""
    if isinstance(node, Mapping):
        system, code = node.get("system"), node.get("code")
        if system in _STANDARD_SYSTEMS and (system, str(code)) not in documented:
            raise fail(
                where,
                f"{system}|{code} is not documented in terminology/ (ConceptMap, with its source)",
            )
        for key, value in node.items():
            _check_standard_codes(value, documented, fail, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_standard_codes(value, documented, fail, f"{where}[{index}]")


#: The rule set's own file in the rules folder; every other ``*.yaml`` is a rule file.
RULESET_FILE = "ruleset.yaml"


def _read(path: Path, schema: RuleFileSchema | RuleSetFileSchema) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleFileError(f"{path}: not readable YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise RuleFileError(f"{path}: (file): expected a mapping at the top level")
    try:
        data: dict[str, Any] = schema.load(raw)
    except ValidationError as exc:
        raise RuleFileError(f"{path}: " + "; ".join(flatten_messages(exc.messages))) from None
    return data


def _load_file(
    path: Path, terminology: Terminology, validate_resource: ResourceValidator | None
) -> tuple[str, str, list[Rule]]:
    data = _read(path, RuleFileSchema())
    builder = _Builder(terminology, path)
    topics = terminology.topics()
    documented = frozenset((m.system, m.code) for m in terminology.mappings)
    rules = []
    for i, r in enumerate(data["rules"]):
        where = f"rules[{i}]"
        if r["topic"] not in topics:
            raise builder.fail(f"{where}.topic", f"{r['topic']!r} is not a card-topic code")
        declared = builder.concepts(r["concepts"], f"{where}.concepts")
        condition = builder.condition(r["when"], f"{where}.when")
        card = r["card"]
        sections = tuple(
            Section(
                builder.condition(s["when"], f"{where}.card.sections[{j}].when"),
                s["text"],
                s["patient"],
            )
            for j, s in enumerate(card["sections"])
        )
        used = concepts_of(condition).union(*(concepts_of(s.when) for s in sections))
        if not used <= declared:
            raise builder.fail(
                f"{where}.when", f"reads {sorted(used - declared)} not in the rule's concepts"
            )
        reasons = []
        for j, code in enumerate(card["overrideReasons"]):
            if code not in terminology.override_reasons:
                raise builder.fail(
                    f"{where}.card.overrideReasons[{j}]", f"unknown override reason {code!r}"
                )
            reasons.append(
                {
                    "system": OVERRIDE_REASON_SYSTEM,
                    "code": code,
                    "display": terminology.override_reasons[code],
                }
            )
        for j, suggestion in enumerate(card["suggestions"]):
            for k, action in enumerate(suggestion["actions"]):
                _check_standard_codes(
                    action.get("resource"),
                    documented,
                    builder.fail,
                    f"{where}.card.suggestions[{j}].actions[{k}].resource",
                )
                if validate_resource is not None:
                    try:
                        validate_resource(action["resource"], path)
                    except ValueError as exc:
                        raise builder.fail(
                            f"{where}.card.suggestions[{j}].actions[{k}].resource", str(exc)
                        ) from None
        rules.append(
            Rule(
                id=r["id"],
                version=r["version"],
                topic=r["topic"],
                indicator=r["indicator"],
                urgency=r["urgency"],
                concepts=declared,
                condition=condition,
                priority=r["priority"],
                sources=tuple(
                    {k: v for k, v in source.items() if v is not None} for source in r["sources"]
                ),
                family=data["family"],
                description=" ".join(data["description"].split()),
                card=CardTemplate(
                    summary=card["summary"],
                    detail=card["detail"],
                    topic_display=topics[r["topic"]].display,
                    patient=Text(card["patient"]["summary"], card["patient"]["detail"]),
                    links=tuple(card["links"]),
                    suggestions=tuple(card["suggestions"]),
                    selection_behavior=card["selectionBehavior"],
                    override_reasons=tuple(reasons),
                    sections=sections,
                ),
            )
        )
    return data["ruleset"], data["version"], rules


def load_ruleset(
    rules_dir: Path,
    terminology: Terminology,
    *,
    validate_resource: ResourceValidator | None = None,
) -> RuleSet:
    paths = sorted(rules_dir.glob("*.yaml")) if rules_dir.is_dir() else []
    paths = [path for path in paths if path.name != RULESET_FILE]
    if not paths:
        raise RuleFileError(f"{rules_dir}: no rule files (*.yaml) found")
    if not (rules_dir / RULESET_FILE).is_file():
        raise RuleFileError(f"{rules_dir / RULESET_FILE}: missing (the rule set's own file)")
    head = _read(rules_dir / RULESET_FILE, RuleSetFileSchema())
    names: set[tuple[str, str]] = {(head["ruleset"], head["version"])}
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    for path in paths:
        name, version, file_rules = _load_file(path, terminology, validate_resource)
        names.add((name, version))
        for rule in file_rules:
            if rule.id in seen:
                raise RuleFileError(
                    f"{path}: rule id {rule.id!r} already defined in {seen[rule.id]}"
                )
            seen[rule.id] = path
        rules.extend(file_rules)
    if len(names) != 1:
        raise RuleFileError(
            f"{rules_dir}: files disagree on ruleset/version (with {RULESET_FILE}): {sorted(names)}"
        )
    ((name, version),) = names
    rules.sort(
        key=lambda r: (INDICATOR_RANK[r.indicator], URGENCY_RANK[r.urgency], r.priority, r.id)
    )
    ruleset = RuleSet(
        name=name,
        version=version,
        rules=tuple(rules),
        questions={code: c.definition for code, c in terminology.questions().items()},
        topic_system=LOCAL_SYSTEM,
        title=head["title"],
        description=" ".join(head["description"].split()),
        urgencies={
            code: UrgencyLevel(
                code,
                {"clinician": level["clinician"].strip(), "patient": level["patient"].strip()},
                tuple(level["phrases"]),
            )
            for code, level in head["urgency"].items()
        },
        raised_notes={k: v.strip() for k, v in head["raised"].items()},
    )
    check_safety(ruleset, terminology)
    return ruleset
