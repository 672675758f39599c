"""Live screening in a real browser: a red flag shows at once, half a form is not "missing",
and out-of-range answers are stopped before anything is sent."""

from __future__ import annotations

import json

from tests.browser.conftest import ARTIFACTS, EMERGENCY_NUMBER, Watched
from tests.browser.patient import LOW_RISK, QUESTIONS, answer, answer_all


def test_ticking_the_bladder_question_shows_the_emergency_message_within_a_second(
    patient: Watched,
) -> None:
    page = patient.open()
    answer(page, "1.1", "Axial loading (squat, deadlift)")
    answer(page, "2.1", "Yes")
    banner = page.locator("#urgent-emergency")
    banner.wait_for(state="visible", timeout=1_000)
    text = banner.inner_text()
    assert "Get medical help now" in text
    assert f"Go to the nearest emergency department now, or call {EMERGENCY_NUMBER}." in text
    why = page.locator("#urgent-why").inner_text()
    assert "emergency department" in why  # the card's own words, in the patient voice
    assert "the patient" not in why.lower()  # never the clinician's voice
    ARTIFACTS.mkdir(exist_ok=True)  # the README's picture (docs/images/intake-portal.png)
    page.screenshot(path=str(ARTIFACTS / "emergency-message.png"))

    answer(page, "2.1", "No")
    page.locator("#urgent").wait_for(state="hidden", timeout=5_000)
    assert [path for path, _ in patient.sent] == ["/intake/screen"] * len(patient.sent)
    assert all(qr["status"] == "in-progress" for _, qr in patient.sent)


def test_half_a_form_reports_no_missing_questions(patient: Watched) -> None:
    page = patient.open()
    first_group = {link: value for link, value in LOW_RISK.items() if link.startswith("1.")}
    with page.expect_response(lambda r: r.url.endswith("/intake/screen")) as last:
        answer_all(page, first_group)
    page.wait_for_load_state("networkidle")
    cards = last.value.json()["cards"]
    assert len(cards) <= 1 and all(card["indicator"] == "info" for card in cards)
    shown = " ".join(
        page.locator(selector).inner_text()
        for selector in ("#progress", "#so-far", "#urgent", "#result", "#problems")
        if page.locator(selector).is_visible()
    )
    unreached = [text for link, text in QUESTIONS.items() if not link.startswith("1.")]
    assert not [text for text in unreached if text.lower() in shown.lower()]
    assert "not answered" not in shown.lower() and "missing" not in shown.lower()
    assert page.locator("#so-far").is_hidden() and page.locator("#urgent").is_hidden()
    assert patient.sent and all(qr["status"] == "in-progress" for _, qr in patient.sent)
    assert all("subject" not in qr for _, qr in patient.sent)  # no name sent while in progress


def test_out_of_range_and_unanswered_are_blocked_before_sending(patient: Watched) -> None:
    page = patient.open()
    answer_all(page, {**LOW_RISK, "1.3": 11})
    page.get_by_role("button", name="Finish and see my result").or_(
        page.get_by_role("button", name="Send my answers to the clinic")
    ).click()
    problems = page.locator("#problems")
    problems.wait_for(state="visible", timeout=5_000)
    listed = problems.inner_text()
    assert "less than or equal to 10" in listed
    assert "Your full name" in listed
    assert page.evaluate("document.activeElement.id") == "problems"
    assert all(qr["status"] == "in-progress" for _, qr in patient.sent)
    assert not any(path == "/intake/submit" for path, _ in patient.sent)


def test_the_server_refuses_what_the_page_would_have_blocked(patient: Watched) -> None:
    page = patient.open()
    refused = page.evaluate(
        """async () => {
            const config = JSON.parse(document.getElementById('portal-config').textContent);
            const qr = LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4',
                document.getElementById('form'));
            qr.status = 'in-progress';
            qr.item = [{linkId: '1', item: [{linkId: '1.3', answer: [{valueInteger: 11}]}]}];
            const r = await fetch(config.screenUrl, {method: 'POST',
                headers: {'Content-Type': 'application/fhir+json',
                          'X-CSRF-Token': config.csrfToken},
                body: JSON.stringify(qr)});
            return [r.status, await r.json()];
        }"""
    )
    status, outcome = refused
    assert status == 422, json.dumps(outcome)
    assert "item 1.3" in outcome["issue"][0]["diagnostics"]
    assert "above the maximum 10" in outcome["issue"][0]["diagnostics"]


def test_a_same_day_red_flag_says_see_a_doctor_today_and_an_emergency_outranks_it(
    patient: Watched,
) -> None:
    page = patient.open()
    answer(page, "3.3", "Yes")
    answer(page, "3.4", "Yes")
    today = page.locator("#urgent-today")
    today.wait_for(state="visible", timeout=5_000)
    assert "See a doctor today" in today.inner_text()
    assert f"call {EMERGENCY_NUMBER}" in today.inner_text()
    assert page.locator("#urgent-emergency").is_hidden()
    answer(page, "2.1", "Yes")
    page.locator("#urgent-emergency").wait_for(state="visible", timeout=5_000)
    assert today.is_hidden()
