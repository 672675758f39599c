"""Finishing the form in a real browser: the completed response is screened, stored on the
clinic's (loopback) FHIR server and audited; keyboard only works; a failed hand-over is
told plainly and the answers can still be downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testkit.fhir_server import FakeFhirStore
from testkit.server import ServerProcess
from tests.browser.conftest import CLINIC_TOKEN, Watched
from tests.browser.patient import LOW_RISK, about_me, answer_all, fill_with_keyboard
from tests.e2e.audit_db import audit_engine, wait_for_invocations

SENT_TO_CLINIC = "Your answers have been sent to the clinic."


def _stored_since(store: FakeFhirStore, before: int) -> list[dict[str, Any]]:
    return store.created[before:]


def _delivered(patient: Watched) -> list[dict[str, Any]]:
    return [qr for path, qr in patient.sent if path == "/intake/submit"]


def test_submit_stores_the_completed_response_on_the_clinic_server(
    patient: Watched, clinic: tuple[FakeFhirStore, str], database_url: str
) -> None:
    store, _ = clinic
    before = len(store.created)
    page = patient.open()
    answer_all(page, LOW_RISK)
    about_me(page, "Alex Example", "1990-02-01")
    page.get_by_role("button", name="Send my answers to the clinic").click()
    page.get_by_text(SENT_TO_CLINIC).wait_for(timeout=15_000)

    (stored,) = _stored_since(store, before)
    assert stored["status"] == "completed"
    assert stored["subject"] == {"display": "Alex Example (born 1990-02-01)"}
    assert stored["questionnaire"].startswith(
        "https://fhir.backpain-cds.dev/Questionnaire/exercise-back-pain-intake"
    )
    assert stored["identifier"]["value"].startswith("urn:uuid:")
    post = [seen for seen in store.seen if seen.get("method") == "POST"][-1]
    assert post["authorization"] == f"Bearer {CLINIC_TOKEN}"
    assert post["if_none_exist"].startswith("identifier=urn:ietf:rfc:3986|urn:uuid:")

    result = page.locator("#result")
    assert result.is_visible() and page.locator("#urgent").is_hidden()
    assert page.locator("#result-cards article").count() >= 1  # the self-care guidance
    summary = page.locator("#summary").inner_text()
    assert "Alex Example (born 1990-02-01)" in summary and "Improving" in summary

    completed = [qr for _, qr in patient.sent if qr.get("status") == "completed"]
    assert [path for path, qr in patient.sent if qr.get("status") == "completed"] == [
        "/intake/screen",
        "/intake/submit",
    ]
    instance = completed[0]["identifier"]["value"]
    with audit_engine(database_url) as engine:
        rows = wait_for_invocations(
            engine,
            "service_id = 'intake-portal' AND hook = 'portal-submit' AND http_status = 201",
            1,
        )
    assert rows, "the hand-over to the clinic left no audit record"
    assert instance == stored["identifier"]["value"]


def test_keyboard_only_completion(patient: Watched, clinic: tuple[FakeFhirStore, str]) -> None:
    store, _ = clinic
    before = len(store.created)
    page = patient.open()
    fill_with_keyboard(page, LOW_RISK, name="Kim Keyboard", born_mmddyyyy="03151985")
    page.get_by_text(SENT_TO_CLINIC).wait_for(timeout=15_000)
    (stored,) = _stored_since(store, before)
    assert stored["subject"] == {"display": "Kim Keyboard (born 1985-03-15)"}
    answered = {
        item["linkId"]: item["answer"][0]
        for group in stored["item"]
        for item in group.get("item", [])
    }
    assert answered["1.3"] == {"valueInteger": 4}
    assert answered["1.1"]["valueCoding"]["code"] == "impact"
    assert answered["2.1"]["valueCoding"]["display"] == "No"
    assert len(answered) == len(LOW_RISK)
    # the choice a keyboard made is the radio button's own checked state (screen readers)
    bladder = page.get_by_role("radiogroup", name="new trouble starting to pass urine")
    assert bladder.get_by_role("radio", name="No", exact=True).is_checked()
    assert page.evaluate("document.activeElement.id") == "result"


def test_a_failed_hand_over_is_told_plainly_and_the_answers_kept(
    patient: Watched,
    clinic: tuple[FakeFhirStore, str],
    portal_server: ServerProcess,
    database_url: str,
    tmp_path: Path,
) -> None:
    store, _ = clinic
    before = len(store.created)
    page = patient.open()
    answer_all(page, LOW_RISK)
    about_me(page, "Sam Unsent", "1979-11-30")
    store.failing_posts, store.post_status = 100, 503
    try:
        page.get_by_role("button", name="Send my answers to the clinic").click()
        page.get_by_text("We could not send your answers to the clinic").wait_for(timeout=15_000)
    finally:
        store.failing_posts = 0
    assert _stored_since(store, before) == []
    assert len(_delivered(patient)) == 1
    with page.expect_download() as download:
        page.get_by_role("button", name="Download your answers for the clinic").click()
    saved = tmp_path / "answers.json"
    download.value.save_as(saved)
    kept = json.loads(saved.read_text())
    assert kept["status"] == "completed"
    assert kept["subject"]["display"] == "Sam Unsent (born 1979-11-30)"
    with audit_engine(database_url) as engine:
        rows = wait_for_invocations(
            engine,
            "service_id = 'intake-portal' AND hook = 'portal-submit' AND http_status = 502",
            1,
        )
    assert rows and rows[-1]["error_code"] == "transient"
    assert "HTTP 503" in rows[-1]["error_detail"]
    assert "Sam Unsent" not in portal_server.log()
