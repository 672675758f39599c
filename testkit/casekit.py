"""Clinical vignettes as data: load ``tests/cases/*.yaml`` and build the QuestionnaireResponse.

A case lists answers by concept code (``saddle-anaesthesia: yes``) over a
default of "every red-flag question answered No" (see DEFAULT_ANSWERS), and
the cards it expects, in order, as ``- topic: indicator``. Options:

- ``defaults: false``       start from no answers at all
- ``answers``               concept: value; ``omit`` removes a default; a list repeats the answer
- ``style``                 loinc (default) | snomed | boolean: how Yes/No/Unknown are coded
- ``form``                  intake (default, bundled) | foreign (contained form, other linkIds,
                            same local codes, deeper groups) | snomed-only (contained form
                            coded only with SNOMED CT where mapped) | unknown (unresolvable
                            canonical) | none (no questionnaire reference)
- ``self_describing``       codes sent as valueCoding answers of an uncoded item
                            (local codes, or ``snomed:<code>``)
- ``qr_questionnaire``      override QuestionnaireResponse.questionnaire
- ``extra_items``           raw QR items appended at the top level (repeated groups, ...)
- ``free_text``             the patient's words in the intake's free-text item (7.1): a string,
                            a list (repeated answers), or a mapping linkId -> string
- ``status``                QuestionnaireResponse.status (default completed)
- ``patient``               a Patient resource the EHR prefetches (``prefetch.patient``)
- ``qr``                    a complete raw QuestionnaireResponse (overrides all of the above)

Every case needs a ``why`` line: the source (text, guideline, principle) its expectation
follows from.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "cases"
INTAKE_PATH = ROOT / "questionnaires" / "Questionnaire-exercise-back-pain-intake.json"
LOCAL = "https://fhir.backpain-cds.dev/CodeSystem/backpain-cds"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
SUBJECT = "Patient/example"
#: the intake's free-text item ("Anything else about your symptoms?")
FREE_TEXT_LINK = "7.1"

DEFAULT_ANSWERS: dict[str, Any] = {
    "exercise-type": "axial-loading",
    "hours-since-onset": 24,
    "pain-severity": 4,
    "pain-radiation-extent": "none",
    "pain-trend": "improving",
    "rested-since-onset": "yes",
    "bladder-dysfunction-new": "no",
    "bowel-incontinence-new": "no",
    "saddle-anaesthesia": "no",
    "sexual-dysfunction-new": "no",
    "leg-symptoms-bilateral": "no",
    "leg-numbness": "no",
    "leg-tingling": "no",
    "leg-weakness": "no",
    "neuro-symptoms-worsening": "no",
    "fever": "no",
    "unexplained-weight-loss": "no",
    "pain-unrelenting": "no",
    "history-of-cancer": "no",
    "immunosuppression": "no",
    "iv-drug-use": "no",
    "significant-trauma": "no",
    "osteoporosis": "no",
    "long-term-steroids": "no",
    "thoracic-pain": "no",
    "night-pain": "no",
    "recent-infection": "no",
    "age": 30,
    "spine-rounding-under-load": "no",
    "spine-overarching-under-load": "no",
}

_YES_NO = {
    "loinc": {
        "yes": (LOINC, "LA33-6", "Yes"),
        "no": (LOINC, "LA32-8", "No"),
        "unknown": (LOINC, "LA4489-6", "Unknown"),
    },
    "snomed": {
        "yes": (SNOMED, "373066001", "Yes"),
        "no": (SNOMED, "373067005", "No"),
        "unknown": (SNOMED, "261665006", "Unknown"),
    },
}


@dataclass(frozen=True)
class Case:
    id: str
    family_file: str
    description: str
    qr: dict[str, Any]
    expected_topics: tuple[str, ...]
    expected_indicators: tuple[str, ...]
    why: str = ""
    patient: dict[str, Any] | None = None


def intake() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(INTAKE_PATH.read_text(encoding="utf-8"))
    return data


def _concept_of(item: Mapping[str, Any]) -> str | None:
    for coding in item.get("code", []):
        if coding.get("system") == LOCAL:
            return str(coding["code"])
    return None


def _normalise(value: Any) -> Any:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value


def _answer_json(item: Mapping[str, Any], value: Any, style: str) -> dict[str, Any]:
    value = _normalise(value)
    if isinstance(value, Mapping):  # raw answer, e.g. {valueString: maybe}
        return dict(value)
    yes_no = any(
        o.get("valueCoding", {}).get("code") == "LA33-6" for o in item.get("answerOption", [])
    )
    if yes_no:
        if style == "boolean" and value in ("yes", "no"):
            return {"valueBoolean": value == "yes"}
        system, code, display = _YES_NO["snomed" if style == "snomed" else "loinc"][value]
        return {"valueCoding": {"system": system, "code": code, "display": display}}
    if item.get("type") == "choice":
        for option in item.get("answerOption", []):
            if option["valueCoding"]["code"] == value:
                return {"valueCoding": dict(option["valueCoding"])}
        if value == "unknown":
            return {"valueCoding": {"system": LOINC, "code": "LA4489-6", "display": "Unknown"}}
        raise ValueError(f"{value!r} is not an option of {_concept_of(item)}")
    if isinstance(value, str) and " " in value:  # a quantity, e.g. "3 d"
        number, unit = value.split()
        return {
            "valueQuantity": {
                "value": float(number),
                "unit": unit,
                "system": "http://unitsofmeasure.org",
                "code": unit,
            }
        }
    if isinstance(value, float):
        return {"valueDecimal": value}
    return {"valueInteger": int(value)}


def _qr_items(
    form_items: Sequence[Mapping[str, Any]],
    answers: Mapping[str, Any],
    style: str,
    texts: Mapping[str, list[str]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in form_items:
        if item.get("type") == "group":
            children = _qr_items(item.get("item", []), answers, style, texts)
            if children:
                out.append({"linkId": item["linkId"], "text": item.get("text"), "item": children})
            continue
        if item["linkId"] in texts:
            out.append(
                {
                    "linkId": item["linkId"],
                    "text": item["text"],
                    "answer": [{"valueString": t} for t in texts[item["linkId"]]],
                }
            )
            continue
        concept = _concept_of(item)
        if concept is None or concept not in answers:
            continue
        values = answers[concept]
        values = values if isinstance(values, list) else [values]
        out.append(
            {
                "linkId": item["linkId"],
                "text": item["text"],
                "answer": [_answer_json(item, v, style) for v in values],
            }
        )
    return out


def _snomed_by_concept() -> dict[str, str]:
    cmap = json.loads(
        (ROOT / "terminology" / "ConceptMap-backpain-cds-to-standard.json").read_text()
    )
    found: dict[str, str] = {}
    for group in cmap["group"]:
        if group["target"] != SNOMED:
            continue
        for element in group["element"]:
            for target in element["target"]:
                if target["equivalence"] in {"equivalent", "wider", "narrower", "inexact"}:
                    found.setdefault(element["code"], target["code"])
    return found


def _foreign_form(snomed_only: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The intake re-authored by another clinic: new linkIds, deeper groups, same codes.

    Returns the form and the map intake linkId -> foreign linkId.
    """
    form = intake()
    mapped = _snomed_by_concept()
    counter = iter(range(1, 1000))
    links: dict[str, str] = {}

    def rewrite(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = []
        for item in items:
            item = copy.deepcopy(item)
            links[item["linkId"]] = item["linkId"] = f"f{next(counter)}"
            item.pop("enableWhen", None)
            concept = _concept_of(item)
            if snomed_only and concept in mapped:
                item["code"] = [{"system": SNOMED, "code": mapped[concept]}]
            if "item" in item:
                item["item"] = rewrite(item["item"])
            result.append(item)
        return result

    foreign = {
        "resourceType": "Questionnaire",
        "id": "foreign",
        "url": "https://other-clinic.example/Questionnaire/back-intake",
        "version": "7",
        "status": "active",
        "item": [
            {"linkId": "outer", "type": "group", "text": "Back pain", "item": rewrite(form["item"])}
        ],
    }
    return foreign, links


def _rename(items: list[dict[str, Any]], links: Mapping[str, str]) -> None:
    for item in items:
        item["linkId"] = links[item["linkId"]]
        _rename(item.get("item", []), links)


def _relink(items: list[dict[str, Any]], links: Mapping[str, str]) -> list[dict[str, Any]]:
    """Answers of the intake re-addressed to the foreign form's linkIds and outer group."""
    _rename(items, links)
    return [{"linkId": "outer", "text": "Back pain", "item": items}] if items else []


def build_qr(spec: Mapping[str, Any]) -> dict[str, Any]:
    if "qr" in spec:
        return copy.deepcopy(dict(spec["qr"]))
    answers: dict[str, Any] = dict(DEFAULT_ANSWERS) if spec.get("defaults", True) else {}
    for concept, value in (spec.get("answers") or {}).items():
        if value == "omit":
            answers.pop(concept, None)
        else:
            answers[concept] = value
    style = spec.get("style", "loinc")
    form_kind = spec.get("form", "intake")
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": spec["id"],
        "status": spec.get("status", "completed"),
        "subject": {"reference": SUBJECT},
        "authored": "2025-01-15T10:00:00Z",
    }
    form = intake()
    links: dict[str, str] | None = None
    if form_kind == "intake":
        qr["questionnaire"] = f"{form['url']}|{form['version']}"
    elif form_kind in {"foreign", "snomed-only"}:
        foreign, links = _foreign_form(snomed_only=form_kind == "snomed-only")
        qr["contained"] = [foreign]
        qr["questionnaire"] = "#foreign"
    elif form_kind == "unknown":
        qr["questionnaire"] = "https://unknown.example/Questionnaire/never-published|9"
    elif form_kind != "none":
        raise ValueError(f"unknown form {form_kind!r}")
    if "qr_questionnaire" in spec:
        qr["questionnaire"] = spec["qr_questionnaire"]
    items = _qr_items(form["item"], answers, style, _texts(spec.get("free_text")))
    if links is not None:
        items = _relink(items, links)
    codes = spec.get("self_describing") or []
    if codes:
        coded = []
        for code in codes:
            system, _, local = str(code).rpartition(":")
            coded.append(
                {"valueCoding": {"system": SNOMED if system == "snomed" else LOCAL, "code": local}}
            )
        items.append({"linkId": "findings", "text": "Reported findings", "answer": coded})
    items.extend(copy.deepcopy(spec.get("extra_items") or []))
    if items:
        qr["item"] = items
    return qr


def _texts(raw: Any) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        return {FREE_TEXT_LINK: [raw]}
    if isinstance(raw, list):
        return {FREE_TEXT_LINK: [str(t) for t in raw]}
    return {str(k): [str(v)] for k, v in dict(raw).items()}


def critical_card_call() -> dict[str, Any]:
    """A fresh intake hook call (new QR id and hookInstance) answered with a critical card."""
    qr = build_qr({"id": f"qr-{uuid.uuid4()}", "answers": {"saddle-anaesthesia": "yes"}})
    qr["status"] = "completed"
    return {
        "hook": "questionnaire-inprogress",
        "hookInstance": str(uuid.uuid4()),
        "context": {"questionnaireResponse": qr},
    }


def hook_request(case: Case, hook_instance: str) -> dict[str, Any]:
    """The CDS Hooks request a client sends for ``case``: the intake hook with the QR in
    context, or (when the case has a Patient) patient-view with both prefetched."""
    if case.patient is None:
        return {
            "hook": "questionnaire-inprogress",
            "hookInstance": hook_instance,
            "context": {"questionnaireResponse": copy.deepcopy(case.qr)},
        }
    return {
        "hook": "patient-view",
        "hookInstance": hook_instance,
        "context": {"userId": "Practitioner/example", "patientId": SUBJECT.split("/")[1]},
        "prefetch": {"intake": copy.deepcopy(case.qr), "patient": copy.deepcopy(case.patient)},
    }


def _expected(raw: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expect must be a list of '- topic: indicator'")
    topics, indicators = [], []
    for entry in raw:
        ((topic, indicator),) = entry.items()
        topics.append(str(topic))
        indicators.append(str(indicator))
    return tuple(topics), tuple(indicators)


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    cases: list[Case] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for spec in data["cases"]:
            where = f"{path.name}:{spec.get('id')}"
            if spec["id"] in seen:
                raise ValueError(f"{where}: duplicate case id")
            seen.add(spec["id"])
            topics, indicators = _expected(spec["expect"], where)
            why = " ".join(str(spec.get("why") or "").split())
            if not why:
                raise ValueError(f"{where}: every case needs a 'why' line citing its source")
            cases.append(
                Case(
                    id=spec["id"],
                    family_file=path.name,
                    description=" ".join(str(spec.get("description", "")).split()),
                    qr=build_qr(spec),
                    expected_topics=topics,
                    expected_indicators=indicators,
                    why=why,
                    patient=copy.deepcopy(spec["patient"]) if spec.get("patient") else None,
                )
            )
    return cases


def topics_of(cards: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(str(card["source"]["topic"]["code"]) for card in cards)


def indicators_of(cards: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    return tuple(str(card["indicator"]) for card in cards)
