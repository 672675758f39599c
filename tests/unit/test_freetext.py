"""The free-text safety net (issue 12, CLINICAL.md principle 6): what the reader finds,
what it cannot read, what the cards say, and the start-up checks that guard it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service import PROJECT_ROOT
from service.cds.locate import prefetched_patient
from service.cds.screen import screen
from service.fhir.freetext import FreeText, FreeTextReader
from service.knowledge import Knowledge, RuleFileError, TerminologyError
from testkit.casekit import build_qr

HOOK = "11111111-2222-4333-8444-555555555555"


def read(knowledge: Knowledge, *texts: str) -> list[tuple[str, bool]]:
    reading = knowledge.reader.read(
        [FreeText(f"t{i}", "Anything else?", t) for i, t in enumerate(texts)]
    )
    return sorted((m.concept, m.uncertain) for m in reading.mentions)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (
            "I've gone numb between the legs and leaked urine at the gym.",
            [("bladder-dysfunction-new", False), ("saddle-anaesthesia", False)],
        ),
        ("When I wipe I can't feel the toilet paper.", [("saddle-anaesthesia", False)]),
        ("No bladder problems.", []),
        ("Denies fever, no numbness in my leg.", []),
        ("No bladder problems. I can't feel the toilet paper.", [("saddle-anaesthesia", False)]),
        ("I haven't had a fever but I wet myself.", [("bladder-dysfunction-new", False)]),
        ("no fever and I have leaked urine", [("bladder-dysfunction-new", False)]),
        ("Not sure if I leaked urine.", [("bladder-dysfunction-new", True)]),
        ("Maybe some pins and needles in my foot", [("leg-tingling", True)]),
        ("If I sit too long my leg goes numb", [("leg-numbness", True)]),
        ("My dad had bowel cancer.", [("history-of-cancer", True)]),
        ("I had breast cancer in 2019.", [("history-of-cancer", False)]),
        ("Sore hamstrings on both sides after deadlifts.", []),
        ("I had chemo last year.", [("history-of-cancer", False), ("immunosuppression", False)]),
    ],
)
def test_mentions_negation_and_uncertainty(
    knowledge: Knowledge, text: str, found: list[tuple[str, bool]]
) -> None:
    assert read(knowledge, text) == found


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Tengo dolor de espalda y no siento las piernas.", "another language (es)"),
        ("腰が痛いです。足がしびれています。", "not in the Latin alphabet"),
        ("My back hurts \ufffd\ufffd after squats", "could not be decoded"),
        ("control\x07character in my notes", "could not be decoded"),
        ("x " * 600, "only the first 1000 were read"),
        ("Jag har ont i ryggen", "another language (sv)"),
    ],
)
def test_text_that_cannot_be_read_is_reported(knowledge: Knowledge, text: str, reason: str) -> None:
    reading = knowledge.reader.read([FreeText("7.1", "Anything else?", text)])
    assert reading.unread == ("7.1",)
    assert reason in reading.notes[0]
    assert "linkId 7.1" in reading.notes[0]


def test_short_and_english_answers_are_read(knowledge: Knowledge) -> None:
    for text in ["n/a", "No", "ok", "fever 38.5 last night", "prednisolone 10mg since march"]:
        assert knowledge.reader.read([FreeText("7.1", "q", text)]).unread == (), text


def test_the_per_response_budget_stops_reading_and_says_so(knowledge: Knowledge) -> None:
    answers = [FreeText(f"n{i}", "Notes", "a" * 900 + " leaked urine") for i in range(8)]
    reading = knowledge.reader.read(answers)
    budget = knowledge.reader.settings.max_total_characters
    assert len(reading.unread) >= len(answers) - budget // 900
    assert any("more free text than the screen reads" in note for note in reading.notes)


def test_reading_keeps_no_strings_between_calls(knowledge: Knowledge) -> None:
    reader = knowledge.reader
    reader.read([FreeText("7.1", "q", "warm up words that settle the vocabulary")])
    before = reader.vocabulary_size
    for i in range(50):
        reader.read([FreeText("7.1", "q", f"zqx{i}a zqy{i}b zqw{i}c leaked urine")])
    assert reader.vocabulary_size == before


def test_card_quotes_the_words_names_the_concept_and_keeps_them_out_of_provenance(
    knowledge: Knowledge,
) -> None:
    words = "When I wipe I can't feel the toilet paper."
    qr = build_qr({"id": "ft", "free_text": words})
    for voice in ("clinician", "patient"):
        cards = screen(qr, knowledge, hook_instance=HOOK, voice=voice).evaluation.cards
        card = cards[0]
        assert (card["indicator"], card["source"]["topic"]["code"]) == ("critical", "cauda-equina")
        assert f'"{words}" (read as: saddle anaesthesia)' in card["detail"]
        provenance = card["extension"]["dev.backpain-cds.provenance"]
        assert provenance["evidence"] == [
            {"linkId": "7.1", "concept": "saddle-anaesthesia", "value": "yes", "code": "free-text"}
        ]
        assert "toilet" not in json.dumps(card["extension"])


def test_a_foreign_answer_never_ends_in_a_complete_screen(knowledge: Knowledge) -> None:
    qr = build_qr({"id": "es", "free_text": "No siento nada entre las piernas desde ayer."})
    cards = screen(qr, knowledge, hook_instance=HOOK).evaluation.cards
    assert [c["source"]["topic"]["code"] for c in cards] == ["screen-incomplete"]
    assert "another language (es)" in cards[0]["detail"]


def test_patient_prefetch_is_used_only_when_it_is_this_patient() -> None:
    def request(patient: object) -> dict[str, object]:
        return {"context": {"patientId": "example"}, "prefetch": {"patient": patient}}

    mine = {"resourceType": "Patient", "id": "example", "birthDate": "1960"}
    assert prefetched_patient(request(mine)) == mine
    assert prefetched_patient(request({**mine, "id": "someone-else"})) is None
    assert prefetched_patient(request({"resourceType": "OperationOutcome"})) is None
    assert prefetched_patient(request(None)) is None


@pytest.mark.parametrize(
    ("birth_date", "age"), [("1960-06-15", 64), ("1960-01-15", 65), ("1960", 65), ("1960-06", 64)]
)
def test_age_from_birth_date_at_the_forms_date(
    knowledge: Knowledge, birth_date: str, age: int
) -> None:
    qr = build_qr({"id": "a", "answers": {"age": "omit", "hours-since-onset": 100}})
    qr["authored"] = "2025-01-15T10:00:00Z"
    patient = {"resourceType": "Patient", "id": "example", "birthDate": birth_date}
    cards = screen(qr, knowledge, hook_instance=HOOK, patient=patient).evaluation.cards
    systemic = next(c for c in cards if c["source"]["topic"]["code"] == "systemic")
    assert f"{age} years" in systemic["detail"]


def test_an_unreadable_birth_date_is_noted_and_age_stays_unscreened(knowledge: Knowledge) -> None:
    qr = build_qr({"id": "a", "answers": {"age": "omit"}})
    patient = {"resourceType": "Patient", "id": "example", "birthDate": "sometime"}
    cards = screen(qr, knowledge, hook_instance=HOOK, patient=patient).evaluation.cards
    assert [c["source"]["topic"]["code"] for c in cards] == ["screen-incomplete"]
    assert "birth date in the record could not be read" in cards[0]["detail"]


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(PROJECT_ROOT / name, target)
    return target


def _load(tmp_path: Path, rules: Path | None = None, terminology: Path | None = None) -> Knowledge:
    return Knowledge.load(
        rules or PROJECT_ROOT / "rules",
        PROJECT_ROOT / "questionnaires",
        terminology or PROJECT_ROOT / "terminology",
    )


def test_a_phrase_the_reader_cannot_read_stops_start_up(tmp_path: Path) -> None:
    terminology = _copy(tmp_path, "terminology")
    path = terminology / "CodeSystem-backpain-cds.json"
    data = json.loads(path.read_text())
    concept = next(c for c in data["concept"] if c["code"] == "leg-numbness")
    phrase = "sin sensibilidad en la pierna izquierda"
    concept["designation"].append({**concept["designation"][0], "value": phrase})
    path.write_text(json.dumps(data))
    with pytest.raises(TerminologyError, match=f"'{phrase}' is not read as an affirmed"):
        _load(tmp_path, terminology=terminology)


def test_a_missing_free_text_rule_stops_start_up(tmp_path: Path) -> None:
    rules = _copy(tmp_path, "rules")
    path = rules / "free-text.yaml"
    text = path.read_text()
    start = text.index("  - id: free-text-systemic")
    end = text.index("  - id: free-text-fracture")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(RuleFileError, match=r"free-text mention of .* alone ends in a complete"):
        _load(tmp_path, rules=rules)


def test_a_combination_that_cannot_fire_alone_stops_start_up(tmp_path: Path) -> None:
    """A critical rule that the least alarming screen blocks (here: it also needs thoracic
    pain not answered No) does not give its card alone: start-up refuses it."""
    rules = _copy(tmp_path, "rules")
    path = rules / "combinations.yaml"
    text = path.read_text()
    anchor = (
        "    when:\n      all:\n        - any:\n            - answered-yes: history-of-cancer\n"
    )
    assert text.count(anchor) == 2  # MSCC first, metastases second
    path.write_text(
        text.replace(
            anchor,
            anchor.replace("all:\n", "all:\n        - not: {answered-no: thoracic-pain}\n"),
            1,
        )
    )
    with pytest.raises(RuleFileError, match="mscc-suspected should fire a critical systemic card"):
        _load(tmp_path, rules=rules)


def test_reader_settings_come_from_terminology(knowledge: Knowledge) -> None:
    reader: FreeTextReader = knowledge.reader
    raw = json.loads((PROJECT_ROOT / "terminology" / "freetext" / "reader.json").read_text())
    assert reader.settings.max_characters == raw["maxCharacters"]
    assert "haven't" in reader.settings.term_sets["negated"]["preceding_negations"]
    assert "not sure" in reader.settings.term_sets["hedged"]["preceding_negations"]
