"""The FHIR adapter: parsing, questionnaire resolution, facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service import PROJECT_ROOT
from service.cds.screen import canonical_sha256, screen
from service.fhir import (
    InvalidResource,
    extract_facts,
    parse_questionnaire_response,
    resolve_questionnaire,
)
from service.knowledge import Knowledge
from service.knowledge.questionnaires import QuestionnaireLibrary
from testkit.casekit import build_qr

INTAKE = "https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake"


def test_invalid_qr_is_translated_with_locations() -> None:
    with pytest.raises(InvalidResource) as info:
        parse_questionnaire_response(
            {"resourceType": "QuestionnaireResponse", "status": "completed",
             "item": [{"linkId": "a", "answer": [{"valueBoolean": "perhaps"}]}]}
        )  # fmt: skip
    assert info.value.expression == ("QuestionnaireResponse.item[0].answer[0].valueBoolean",)
    assert "valueBoolean" in info.value.message
    with pytest.raises(InvalidResource, match="expected resourceType"):
        parse_questionnaire_response({"resourceType": "Patient"})
    with pytest.raises(InvalidResource, match="JSON object"):
        parse_questionnaire_response([1, 2])


def test_too_many_items_is_rejected(knowledge: Knowledge) -> None:
    qr = build_qr({"id": "big"})
    qr["item"] = [{"linkId": f"x{i}"} for i in range(30)]
    with pytest.raises(InvalidResource, match="more than 20 items"):
        screen(qr, knowledge, hook_instance="h", max_items=20)


def test_library_lookups(knowledge: Knowledge) -> None:
    lib = knowledge.library
    assert lib.intake_canonical == INTAKE
    assert lib.get(f"{INTAKE}|1.0.0") is lib.get(INTAKE)
    assert lib.get(f"{INTAKE}|9.9.9") is None
    assert lib.by_id("exercise-back-pain-intake")["version"] == "1.0.0"  # type: ignore[index]
    assert lib.by_id("nope") is None
    assert len(lib.search(INTAKE)) == 1 and lib.search("https://x.example/Q") == []


def test_library_refuses_a_draft_form(tmp_path: Path, knowledge: Knowledge) -> None:
    src = PROJECT_ROOT / "questionnaires" / "Questionnaire-exercise-back-pain-intake.json"
    data = json.loads(src.read_text())
    data["status"] = "draft"
    (tmp_path / "q.json").write_text(json.dumps(data))
    with pytest.raises(InvalidResource, match=r"q\.json: Questionnaire\.status must be active"):
        QuestionnaireLibrary.load(tmp_path, knowledge.vocabulary, knowledge.terminology)


def test_resolution_order(knowledge: Knowledge) -> None:
    qr = parse_questionnaire_response(build_qr({"id": "r", "form": "foreign"}))
    assert resolve_questionnaire(qr, knowledge.library)[1] == "contained"
    qr = parse_questionnaire_response(build_qr({"id": "r"}))
    assert resolve_questionnaire(qr, knowledge.library)[1] == "bundled"
    foreign = build_qr({"id": "r", "form": "foreign"})
    remote = foreign.pop("contained")[0]
    foreign["questionnaire"] = "https://other-clinic.example/Questionnaire/back-intake|7"
    asked: list[str] = []

    def fetch(canonical: str) -> dict | None:
        asked.append(canonical)
        return remote

    qr = parse_questionnaire_response(foreign)
    q, how = resolve_questionnaire(qr, knowledge.library, fetch)
    assert how == "fhirServer" and q is not None and asked == [foreign["questionnaire"]]
    assert resolve_questionnaire(qr, knowledge.library, lambda c: None) == (None, "unresolved")
    assert (
        resolve_questionnaire(qr, knowledge.library, lambda c: {"resourceType": "Patient"})[1]
        == "unresolved"
    )


def test_server_fetched_form_is_used_for_facts(knowledge: Knowledge) -> None:
    foreign = build_qr({"id": "r", "form": "foreign", "answers": {"fever": "yes"}})
    remote = foreign.pop("contained")[0]
    foreign["questionnaire"] = "https://other-clinic.example/Questionnaire/back-intake|7"
    result = screen(foreign, knowledge, hook_instance="h", fetch_questionnaire=lambda c: remote)
    assert result.questionnaire_resolution == "fhirServer"
    assert result.questionnaire == "https://other-clinic.example/Questionnaire/back-intake|7"
    assert [c["source"]["topic"]["code"] for c in result.evaluation.cards] == ["systemic"]


def test_facts_values_and_most_alarming_answer(knowledge: Knowledge) -> None:
    qr = build_qr(
        {
            "id": "f",
            "answers": {
                "hours-since-onset": "2 wk",
                "pain-severity": [3, 8],
                "fever": ["no", "unknown"],
            },
        }
    )
    parsed = parse_questionnaire_response(qr)
    q, _ = resolve_questionnaire(parsed, knowledge.library)
    assert q is not None
    facts = extract_facts(parsed, knowledge.library.index_of(q), knowledge.vocabulary)
    assert facts.answers["hours-since-onset"].value == 336
    assert facts.answers["pain-severity"].value == 8
    assert facts.answers["fever"].value == "unknown"
    assert facts.answers["saddle-anaesthesia"].answer_code == "LA32-8"
    assert facts.answers["exercise-type"].value == "axial-loading"
    assert facts.subject == "Patient/example" and facts.questionnaire_known


def test_enable_when_disables_context_items(knowledge: Knowledge) -> None:
    qr = build_qr(
        {"id": "e", "answers": {"exercise-type": "impact", "spine-rounding-under-load": "omit",
                                "spine-overarching-under-load": "omit"}}
    )  # fmt: skip
    parsed = parse_questionnaire_response(qr)
    q, _ = resolve_questionnaire(parsed, knowledge.library)
    assert q is not None
    facts = extract_facts(parsed, knowledge.library.index_of(q), knowledge.vocabulary)
    assert facts.disabled == {
        "spine-rounding-under-load", "spine-overarching-under-load",
        "sharp-localised-pain-after-twisting",
    }  # fmt: skip
    assert "pain-builds-with-duration" not in facts.disabled


def test_screening_record(knowledge: Knowledge) -> None:
    qr = build_qr({"id": "qr-1"})
    qr["meta"] = {"versionId": "3"}
    result = screen(qr, knowledge, hook_instance="h")
    assert (result.qr_id, result.qr_version, result.subject) == ("qr-1", "3", "Patient/example")
    assert result.qr_sha256 == canonical_sha256(json.loads(json.dumps(qr)))
    assert len(result.qr_sha256) == 64
    assert result.questionnaire == f"{INTAKE}|1.0.0"
    assert result.evaluation.rules_version == "backpain-redflags 2.0.0"
    assert screen(qr, knowledge, hook_instance="h") == result
