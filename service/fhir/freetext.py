"""Reading the patient's own words: red-flag mentions in free-text answers.

Trigger phrases come from ``terminology/`` (designations of each concept) and
are matched by spaCy's ``EntityRuler`` on a blank English pipeline: no model is
downloaded, nothing is trained. The context part is negspacy's NegEx, run three
times with three term sets (``terminology/freetext/termsets.json``): negation
(negspacy's maintained clinical English term set plus patients' phrasings),
uncertainty (hedges, conditionals) and other people ("my dad had cancer").
spaCy is imported when a reader is built (knowledge load), not when this module
is imported; each text is read inside a spaCy memory zone, so a long-running
worker does not keep every string it has seen.

Reading errs towards the patient: only a negated mention is dropped; a hedged,
conditional or third-person mention is kept and marked uncertain. Text that
cannot be read (too long, another language, undecodable) is reported so the
screen says it is incomplete.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.engine import Mention

_LABEL = "RED_FLAG"
_QUOTE_LIMIT = 240
_SEPARATOR = "|"
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
#: negspacy extension names: the negation pass, and the passes that make a mention uncertain
NEGATED = "negated"
_UNCERTAIN = ("hedged", "other_person")
TERM_SETS = (NEGATED, *_UNCERTAIN)
TERM_KEYS = ("pseudo_negations", "preceding_negations", "following_negations", "termination")
#: sentence ends: NegEx never reaches past one (nor past a termination term)
_SENTENCE_ENDS = (".", "!", "?", ";", "\n")


@dataclass(frozen=True)
class ReaderSettings:
    """Limits and context rules of the reader (``terminology/freetext/reader.json``)."""

    #: longer answers are read up to this bound and reported as not fully read
    max_characters: int = 1000
    #: per QuestionnaireResponse; answers beyond it are not read at all (reported)
    max_total_characters: int = 6000
    #: language checks start at this many words (shorter answers are read as English)
    min_words_for_language: int = 3
    #: a text is another language when the identifier is at least this sure ...
    language_confidence: float = 0.5
    #: ... and at most this share of its words are English function words
    english_word_share: float = 0.2
    #: negspacy term sets by pass (negated, hedged, other_person): each has
    #: pseudo_negations, preceding_negations, following_negations, termination;
    #: the negated pass adds them to negspacy's "en_clinical" term set
    term_sets: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class FreeText:
    """One free-text answer to read."""

    link_id: str
    question: str
    text: str


@dataclass(frozen=True)
class TextReading:
    mentions: tuple[Mention, ...] = ()
    #: linkIds of answers not (fully) read
    unread: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class FreeTextReader:
    """Built once per process (knowledge load); ``read`` is safe to call from threads."""

    #: lower-cased phrase -> the concepts it names
    phrases: Mapping[str, frozenset[str]]
    #: concept -> its display, e.g. "Saddle anaesthesia"
    displays: Mapping[str, str]
    settings: ReaderSettings = field(default_factory=ReaderSettings)

    def __post_init__(self) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._lock = threading.Lock()
        self._language = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._nlp = self._build()
        self._stop_words: frozenset[str] = frozenset(self._nlp.Defaults.stop_words)

    def _build(self) -> Any:
        import spacy
        from negspacy import termsets
        from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)

        make_termset: Any = termsets.termset  # negspacy ships no type hints
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer", config={"punct_chars": list(_SENTENCE_ENDS)})
        ruler: Any = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
        ruler.add_patterns(
            [
                {"label": _LABEL, "pattern": phrase, "id": _SEPARATOR.join(sorted(concepts))}
                for phrase, concepts in sorted(self.phrases.items())
            ]
        )
        for name in TERM_SETS:
            given = {k: list(v) for k, v in self.settings.term_sets.get(name, {}).items()}
            if name == NEGATED:
                clinical = make_termset("en_clinical")
                clinical.add_patterns(given)
                patterns = clinical.get_patterns()
            else:
                patterns = {key: given.get(key, []) for key in TERM_KEYS}
            nlp.add_pipe(
                "negex",
                name=name,
                config={"neg_termset": patterns, "extension_name": name},
            )
        return nlp

    @property
    def vocabulary_size(self) -> int:
        """Strings the pipeline holds: constant across reads (each read is a memory zone)."""
        return len(self._nlp.vocab.strings)

    def read(self, answers: Sequence[FreeText]) -> TextReading:
        mentions: dict[tuple[str, str], Mention] = {}
        unread: list[str] = []
        notes: list[str] = []
        budget = self.settings.max_total_characters
        for answer in answers:
            text = _normalise(answer.text)
            if not text:
                continue
            where = f"'{answer.question or 'free text'}' (linkId {answer.link_id})"
            if budget <= 0:
                unread.append(answer.link_id)
                notes.append(
                    f"The free-text answer to {where} was not read: the form holds "
                    f"more free text than the screen reads "
                    f"({self.settings.max_total_characters} characters); read it yourself."
                )
                continue
            problem = self._unreadable(text)
            if problem is not None:
                unread.append(answer.link_id)
                notes.append(
                    f"The free-text answer to {where} could not be read: {problem}. "
                    "Read it with the patient (or an interpreter)."
                )
                continue
            limit = min(self.settings.max_characters, budget)
            if len(text) > limit:
                unread.append(answer.link_id)
                notes.append(
                    f"The free-text answer to {where} is {len(text)} characters long; "
                    f"only the first {limit} were read. Read the rest yourself."
                )
                text = text[:limit]
            budget -= len(text)
            for mention in self._mentions(answer, text):
                key = (mention.concept, mention.link_id)
                if key not in mentions or (mentions[key].uncertain and not mention.uncertain):
                    mentions[key] = mention
        return TextReading(tuple(mentions.values()), tuple(dict.fromkeys(unread)), tuple(notes))

    def _unreadable(self, text: str) -> str | None:
        if "\ufffd" in text or any(
            ch != "\n" and unicodedata.category(ch) in {"Cc", "Cs", "Co", "Cn"} for ch in text
        ):
            return "it holds characters that could not be decoded"
        letters = [ch for ch in text if ch.isalpha()]
        if not letters:
            return None
        latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
        if latin * 2 < len(letters):
            return "it is not written in English (not in the Latin alphabet)"
        words = [w.strip(".,;:!?()\"'").lower() for w in text.split()]
        words = [w for w in words if w.isalpha()]
        if len(words) < self.settings.min_words_for_language:
            return None
        language, confidence = self._language.classify(text)
        if language == "en" or confidence < self.settings.language_confidence:
            return None
        english = sum(1 for w in words if w in self._stop_words)
        if english > self.settings.english_word_share * len(words):
            return None
        return f"it looks like another language ({language}), not English"

    def _mentions(self, answer: FreeText, text: str) -> list[Mention]:
        found: list[Mention] = []
        with self._lock, self._nlp.memory_zone():
            doc = self._nlp(text)
            for ent in doc.ents:
                uncertain = any(getattr(ent._, name) for name in _UNCERTAIN)
                if getattr(ent._, NEGATED) and not uncertain:
                    continue
                quote = _quote(ent.sent.text if ent.sent is not None else text, ent.text)
                for concept in str(ent.ent_id_).split(_SEPARATOR):
                    found.append(
                        Mention(
                            concept=concept,
                            quote=quote,
                            link_id=answer.link_id,
                            question=answer.question,
                            concept_display=self.displays.get(concept, concept),
                            uncertain=uncertain,
                        )
                    )
        return found


def _normalise(text: str) -> str:
    """NFKC, straight apostrophes, one space between words, one line break between lines."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _quote(sentence: str, phrase: str) -> str:
    sentence = " ".join(sentence.split())
    if len(sentence) <= _QUOTE_LIMIT:
        return sentence
    at = max(0, sentence.lower().find(phrase.lower()))
    start = max(0, at - _QUOTE_LIMIT // 3)
    excerpt = sentence[start : start + _QUOTE_LIMIT].strip()
    return ("..." if start else "") + excerpt + "..."
