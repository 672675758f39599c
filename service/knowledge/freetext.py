"""The free-text reader's data: trigger phrases (designations in the local CodeSystem),
NegEx term sets and limits (``terminology/freetext/``). Loaded and checked at start-up.

Check: every trigger phrase, written alone, is read as an affirmed mention of its
concept(s), so no phrase is dead (mistyped, or negated by its own words).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.fhir.freetext import TERM_KEYS, TERM_SETS, FreeText, FreeTextReader, ReaderSettings
from service.knowledge.terminology import Terminology, TerminologyError

FREETEXT_DIR = "freetext"
_SETTINGS = {
    "maxCharacters": "max_characters",
    "maxTotalCharacters": "max_total_characters",
    "minWordsForLanguage": "min_words_for_language",
    "languageConfidence": "language_confidence",
    "englishWordShare": "english_word_share",
}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TerminologyError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise TerminologyError(f"{path}: expected a JSON object")
    return data


def load_settings(directory: Path) -> ReaderSettings:
    folder = directory / FREETEXT_DIR
    raw = _read(folder / "reader.json")
    values: dict[str, Any] = {}
    for key, name in _SETTINGS.items():
        value = raw.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise TerminologyError(f"{folder / 'reader.json'}: {key}: expected a positive number")
        values[name] = value
    return ReaderSettings(
        max_characters=int(values["max_characters"]),
        max_total_characters=int(values["max_total_characters"]),
        min_words_for_language=int(values["min_words_for_language"]),
        language_confidence=float(values["language_confidence"]),
        english_word_share=float(values["english_word_share"]),
        term_sets=_term_sets(folder / "termsets.json"),
    )


def _term_sets(path: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    raw = _read(path)
    sets: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in TERM_SETS:
        entry = raw.get(name)
        if not isinstance(entry, dict) or set(entry) != set(TERM_KEYS):
            raise TerminologyError(f"{path}: {name}: expected exactly the keys {list(TERM_KEYS)}")
        sets[name] = {}
        for key in TERM_KEYS:
            terms = entry[key]
            if not isinstance(terms, list) or not all(
                isinstance(t, str) and t.strip() for t in terms
            ):
                raise TerminologyError(f"{path}: {name}.{key}: expected a list of phrases")
            sets[name][key] = tuple(t.strip() for t in terms)
    return sets


def trigger_phrases(terminology: Terminology) -> dict[str, frozenset[str]]:
    """Lower-cased phrase -> the question concepts it names."""
    found: dict[str, set[str]] = {}
    for concept in terminology.questions().values():
        for phrase in concept.phrases:
            found.setdefault(phrase.lower(), set()).add(concept.code)
    return {phrase: frozenset(concepts) for phrase, concepts in found.items()}


def build_reader(directory: Path, terminology: Terminology) -> FreeTextReader:
    phrases = trigger_phrases(terminology)
    if not phrases:
        raise TerminologyError(f"{directory}: no patient-phrase designations in the CodeSystem")
    try:
        reader = FreeTextReader(
            phrases=phrases,
            displays={c.code: c.display.lower() for c in terminology.questions().values()},
            settings=load_settings(directory),
        )
    except (ValueError, KeyError, TypeError) as exc:  # negspacy rejects a malformed term set
        raise TerminologyError(f"{directory / FREETEXT_DIR}: {exc}") from exc
    check_phrases(reader, phrases)
    return reader


def check_phrases(reader: FreeTextReader, phrases: Mapping[str, frozenset[str]]) -> None:
    answers = [FreeText(f"p{i}", "check", phrase) for i, phrase in enumerate(sorted(phrases))]
    for answer in answers:
        reading = reader.read([answer])
        found = {m.concept for m in reading.mentions if not m.uncertain}
        missing = phrases[answer.text] - found
        if missing or reading.unread:
            raise TerminologyError(
                f"patient phrase {answer.text!r} is not read as an affirmed mention of "
                f"{sorted(missing) or sorted(phrases[answer.text])}"
                + (f" ({'; '.join(reading.notes)})" if reading.notes else "")
            )
