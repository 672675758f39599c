"""terminology/: exactly the codes of CLINICAL.md; every standard code verified and sourced."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from service import PROJECT_ROOT
from service.fhir import validate_resource
from service.knowledge.terminology import (
    ICD10CM,
    LOCAL_SYSTEM,
    SNOMED,
    Terminology,
    TerminologyError,
)

with warnings.catch_warnings():
    # simple-icd-10-cm 1.5 loads its data with the deprecated importlib.resources.read_text
    warnings.simplefilter("ignore", DeprecationWarning)
    import simple_icd_10_cm as icd

TERMINOLOGY = PROJECT_ROOT / "terminology"
QUESTIONS = {
    "bladder-dysfunction-new", "bowel-incontinence-new", "saddle-anaesthesia",
    "sexual-dysfunction-new", "leg-symptoms-bilateral", "pain-radiation-extent", "leg-numbness",
    "leg-tingling", "leg-weakness", "neuro-symptoms-worsening", "fever",
    "unexplained-weight-loss", "pain-unrelenting", "history-of-cancer", "immunosuppression",
    "iv-drug-use", "significant-trauma", "hours-since-onset", "rested-since-onset", "pain-trend",
    "exercise-type", "pain-severity", "spine-rounding-under-load", "spine-overarching-under-load",
    "pain-builds-with-duration", "sharp-localised-pain-after-twisting",
}  # fmt: skip
ANSWERS = {
    "none", "buttock-or-thigh", "below-knee", "improving", "unchanged", "worsening",
    "axial-loading", "impact", "rotational", "other",
}  # fmt: skip
TOPICS = {
    "cauda-equina", "progressive-neurological-deficit", "sciatica", "neurological", "systemic",
    "fracture", "persistence", "screen-incomplete", "immediate-steps", "technique", "stabilisation",
}  # fmt: skip
# CLINICAL.md "Standard codes already checked" (likely ones marked True)
CHECKED_SNOMED = {
    "192970008": False, "449813001": True, "165232002": False, "267064002": False,
    "236648008": False, "5972002": False, "72042002": False, "56925008": False, "23056005": False,
    "44077006": False, "309537005": False, "91019004": False, "62507009": False, "26544005": False,
    "102568007": False, "6077001": False, "386661006": False, "267024001": False,
    "422868009": False, "266987004": False, "370388006": False, "228388006": False,
    "279039007": False, "128196005": False, "20021007": False, "37822005": False,
    "306254002": True, "308447003": True,  # referrals (procedures), marked likely
}  # fmt: skip
CHECKED_ICD = {
    "G83.4", "R32", "R33.9", "R39.11", "R15.9", "R37", "M54.30", "M54.40", "R20.0", "R20.2",
    "M62.81", "M21.379", "R50.9", "R63.4", "M54.50", "M54.16", "M51.26",
}  # fmt: skip


@pytest.fixture(scope="module")
def terminology() -> Terminology:
    return Terminology.load(TERMINOLOGY, validate=validate_resource)


def _all_codings(node: object) -> list[dict]:
    if isinstance(node, dict):
        own = [node] if "system" in node and "code" in node else []
        return own + [c for v in node.values() for c in _all_codings(v)]
    if isinstance(node, list):
        return [c for v in node for c in _all_codings(v)]
    return []


def _resources() -> list[dict]:
    folders = [TERMINOLOGY, PROJECT_ROOT / "questionnaires"]
    return [json.loads(p.read_text()) for d in folders for p in sorted(d.glob("*.json"))]


def test_codesystem_has_exactly_the_clinical_codes(terminology: Terminology) -> None:
    kinds = {c.code: c.kind for c in terminology.concepts.values()}
    assert {c for c, k in kinds.items() if k == "question"} == QUESTIONS
    assert {c for c, k in kinds.items() if k == "answer"} == ANSWERS
    assert {c for c, k in kinds.items() if k == "card-topic"} == TOPICS
    assert terminology.choices_of("pain-radiation-extent") == (
        "none",
        "buttock-or-thigh",
        "below-knee",
    )


def test_value_sets_per_family(terminology: Terminology) -> None:
    base = "https://fhir.backpain-cds.dev/ValueSet/"
    assert terminology.expand(base + "cauda-equina") == {
        "bladder-dysfunction-new", "bowel-incontinence-new", "saddle-anaesthesia",
        "sexual-dysfunction-new", "leg-symptoms-bilateral",
    }  # fmt: skip
    assert terminology.expand(base + "systemic") >= {"fever", "iv-drug-use"}
    assert terminology.expand(base + "card-topics") == TOPICS


def test_every_icd10cm_code_and_display_is_real() -> None:
    seen = set()
    for resource in _resources():
        for coding in _all_codings(resource):
            if coding["system"] != ICD10CM:
                continue
            code, display = coding["code"], coding.get("display")
            assert icd.is_valid_item(code), code
            assert display == icd.get_description(code), (code, display)
            assert code in CHECKED_ICD, code
            seen.add(code)
    for resource in _resources():  # ConceptMap targets are not Codings: check them too
        for group in resource.get("group", []):
            if group["target"] == ICD10CM:
                for element in group["element"]:
                    for target in element["target"]:
                        assert icd.is_valid_item(target["code"]), target
                        assert target["display"] == icd.get_description(target["code"])
                        assert target["code"] in CHECKED_ICD
                        seen.add(target["code"])
    assert len(seen) >= 15


def test_every_standard_code_is_checked_and_names_its_source(terminology: Terminology) -> None:
    for m in terminology.mappings:
        assert m.source, m
        if m.system == SNOMED:
            assert m.code in CHECKED_SNOMED, m.code
            likely = CHECKED_SNOMED[m.code]
            assert (m.evidence == "likely") == likely, m.code
            if likely:
                assert m.equivalence in {"inexact", "relatedto"}
    for resource in _resources():
        for coding in _all_codings(resource):
            if coding["system"] == SNOMED:
                assert coding["code"] in CHECKED_SNOMED, coding
    assert "89362005" not in json.dumps(_resources())


def test_local_code_stays_primary_in_the_form() -> None:
    form = json.loads(
        (
            PROJECT_ROOT / "questionnaires" / "Questionnaire-exercise-back-pain-intake.json"
        ).read_text()
    )
    stack = list(form["item"])
    while stack:
        item = stack.pop()
        if item["type"] != "group":
            assert item["code"][0]["system"] == LOCAL_SYSTEM
            assert not any(c["code"] == "449813001" for c in item["code"])  # likely: not on items
        stack.extend(item.get("item", []))


def test_inconsistent_terminology_names_file_and_field(tmp_path: Path) -> None:
    for path in TERMINOLOGY.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    vs = tmp_path / "ValueSet-fever-test.json"
    data = json.loads((tmp_path / "ValueSet-systemic.json").read_text())
    data["url"] += "-copy"
    data["compose"]["include"][0]["concept"].append({"code": "back-ache"})
    vs.write_text(json.dumps(data))
    with pytest.raises(TerminologyError, match=r"ValueSet-fever-test.json: compose.include\[0\]"):
        Terminology.load(tmp_path)
    vs.unlink()
    cmap = tmp_path / "ConceptMap-backpain-cds-to-standard.json"
    data = json.loads(cmap.read_text())
    data["group"][0]["element"][0]["target"][0].pop("extension")
    cmap.write_text(json.dumps(data))
    with pytest.raises(TerminologyError, match="mapping-source"):
        Terminology.load(tmp_path)
