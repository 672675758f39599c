"""Reference tables for the docs, generated from the engine and the loaded knowledge
(``backpain-cds rules vocabulary`` / ``rules concepts``), so the docs cannot drift:
tests compare docs/ with these commands' output."""

from __future__ import annotations

from collections import defaultdict

from service.engine import PREDICATES
from service.engine.text import PLACEHOLDERS
from service.knowledge import Knowledge

SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
}
ANSWER_KINDS = {
    "yes-no-unknown": "Yes / No / Unknown",
    "integer": "a number",
    "decimal": "a number",
    "quantity": "a number (or a duration Quantity)",
}


def vocabulary_markdown() -> str:
    """The predicates a rule's ``when`` may use and the placeholders a card's text may use."""
    lines = ["| predicate | takes | holds when |", "|---|---|---|"]
    for spec in PREDICATES.values():
        if not spec.needs_concepts:
            takes = "`true`"
        else:
            takes = "`concept`, `concepts` or `valueSet`"
            takes += " and `codes`" if spec.needs_codes else ""
            takes += " and `threshold`" if spec.needs_threshold else ""
        lines.append(f"| `{spec.name}` | {takes} | {spec.description} |")
    lines += ["", "| placeholder | becomes |", "|---|---|"]
    lines += [f"| `{{{name}}}` | {text} |" for name, text in PLACEHOLDERS.items()]
    return "\n".join(lines)


def _codings(codes: frozenset[tuple[str, str]]) -> str:
    return ", ".join(
        f"{SYSTEM_NAMES.get(system, system)} `{code}`" for system, code in sorted(codes)
    )


def concepts_markdown(knowledge: Knowledge) -> str:
    """The question concepts a form's items are read by, and how answers are read."""
    vocabulary = knowledge.vocabulary
    choices: dict[str, list[str]] = defaultdict(list)
    for answer, concept in vocabulary.answer_of.items():
        choices[concept].append(f"`{answer}`")
    standard: dict[str, list[str]] = defaultdict(list)
    for (system, code), concept in sorted(vocabulary.by_standard.items()):
        standard[concept].append(f"{SYSTEM_NAMES.get(system, system)} `{code}`")
    lines = [
        f"Item codes in `{vocabulary.local_system}` (or a standard code listed here):",
        "",
        "| concept | answer | standard codes read as this concept | question |",
        "|---|---|---|---|",
    ]
    for concept, kind in vocabulary.answer_types.items():
        if kind in ANSWER_KINDS:
            answer = ANSWER_KINDS[kind]
        else:
            answer = "one of " + ", ".join(choices[concept]) if choices[concept] else kind
        question = knowledge.ruleset.questions.get(concept) or vocabulary.displays.get(concept, "")
        codes = ", ".join(standard[concept]) or "-"
        lines.append(f"| `{concept}` | {answer} | {codes} | {question} |")
    lines += [
        "",
        "Yes / No / Unknown answers are read from `valueBoolean` or a `valueCoding`:",
        "",
        f"- Yes: {_codings(vocabulary.yes_codes)}",
        f"- No: {_codings(vocabulary.no_codes)}",
        f"- Unknown: {_codings(vocabulary.unknown_codes)}",
    ]
    return "\n".join(lines)
