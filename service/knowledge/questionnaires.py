"""The Questionnaires bundled with the service (``questionnaires/``), parsed and indexed once.

Checked at start-up: valid FHIR R4, ``id``/``url``/``version`` present, status
active, linkIds unique, every local code one the CodeSystem defines and every
SNOMED CT code one the ConceptMap documents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.fhir import (
    FormIndex,
    InvalidResource,
    Questionnaire,
    Vocabulary,
    parse_questionnaire,
    walk_items,
)
from service.knowledge.terminology import LOCAL_SYSTEM, SNOMED, Terminology


class KnowledgeError(ValueError):
    """The clinical data folders disagree; the message names the file and the field."""


#: The id of the intake form the services' prefetch asks for.
INTAKE_ID = "exercise-back-pain-intake"


@dataclass(frozen=True)
class BundledForm:
    raw: dict[str, Any]
    model: Questionnaire
    index: FormIndex
    url: str
    version: str

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.split("."))


class QuestionnaireLibrary:
    """Look-ups by canonical, id and url; the form index of each bundled form."""

    def __init__(self, forms: Sequence[BundledForm], intake_canonical: str) -> None:
        self._forms = tuple(forms)
        self._by_canonical = {f.canonical: f for f in forms}
        self._latest: dict[str, BundledForm] = {}
        for form in sorted(forms, key=lambda f: _version_key(f.version)):
            self._latest[form.url] = form
        self._by_id = {str(f.raw["id"]): f for f in forms}
        self._by_model = {id(f.model): f for f in forms}
        self._intake = intake_canonical

    @classmethod
    def load(
        cls, directory: Path, vocabulary: Vocabulary, terminology: Terminology
    ) -> QuestionnaireLibrary:
        paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
        if not paths:
            raise InvalidResource(f"{directory}: no Questionnaire JSON files found")
        forms: list[BundledForm] = []
        seen: set[str] = set()
        for path in paths:
            form = _load_form(path, vocabulary, terminology)
            if form.canonical in seen:
                raise InvalidResource(f"{path}: duplicate Questionnaire {form.canonical}")
            seen.add(form.canonical)
            forms.append(form)
        intake = [f for f in forms if f.raw["id"] == INTAKE_ID]
        if not intake:
            raise InvalidResource(
                f"{directory}: the intake Questionnaire id={INTAKE_ID} is missing"
            )
        return cls(forms, intake[0].url)

    def get(self, canonical: str) -> Questionnaire | None:
        url, _, version = canonical.partition("|")
        form = self._by_canonical.get(canonical) if version else self._latest.get(url)
        return form.model if form else None

    def index_of(self, questionnaire: Questionnaire) -> FormIndex | None:
        """The prebuilt index when ``questionnaire`` is one of the bundled models."""
        form = self._by_model.get(id(questionnaire))
        return form.index if form is not None and form.model is questionnaire else None

    def by_id(self, id: str) -> dict[str, Any] | None:
        form = self._by_id.get(id)
        return form.raw if form else None

    def search(self, url: str | None = None) -> list[dict[str, Any]]:
        if url is None:
            return [f.raw for f in self._forms]
        base, _, version = url.partition("|")
        return [f.raw for f in self._forms if f.url == base and version in ("", f.version)]

    @property
    def intake_canonical(self) -> str:
        return self._intake


def _load_form(path: Path, vocabulary: Vocabulary, terminology: Terminology) -> BundledForm:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidResource(f"{path}: not readable JSON: {exc}") from exc
    try:
        model = parse_questionnaire(raw)
    except InvalidResource as exc:
        raise InvalidResource(f"{path}: {exc.message}", exc.expression) from None
    for name in ("id", "url", "version"):
        if not raw.get(name):
            raise InvalidResource(f"{path}: Questionnaire.{name} is required")
    if raw.get("status") != "active":
        raise InvalidResource(f"{path}: Questionnaire.status must be active")
    _check_items(path, raw, terminology)
    return BundledForm(
        raw=raw,
        model=model,
        index=FormIndex.build(model, vocabulary),
        url=raw["url"],
        version=raw["version"],
    )


def _check_items(path: Path, raw: Mapping[str, Any], terminology: Terminology) -> None:
    """Unique linkIds; local codes exist; SNOMED CT codes are documented in the ConceptMap."""
    known_standard = {(m.system, m.code) for m in terminology.mappings}
    seen: set[str] = set()
    for item, _ in walk_items(raw.get("item")):
        link_id = item.get("linkId")
        where = f"{path}: item {link_id!r}"
        if link_id in seen:
            raise InvalidResource(f"{path}: Questionnaire.item linkId {link_id!r} is not unique")
        seen.add(link_id)
        codings = list(item.get("code", []))
        codings += [o["valueCoding"] for o in item.get("answerOption", []) if "valueCoding" in o]
        for coding in codings:
            system, code = coding.get("system"), coding.get("code")
            if system == LOCAL_SYSTEM and code not in terminology.concepts:
                raise KnowledgeError(f"{where}: code {code!r} is not in {LOCAL_SYSTEM}")
            if system == SNOMED and (system, code) not in known_standard:
                raise KnowledgeError(f"{where}: SNOMED CT {code} is not in the ConceptMap")
