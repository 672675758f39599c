"""Accessibility (axe-core, vendored from npm, WCAG 2.1 A and AA rules) on the page as a
patient meets it: empty, with the emergency message, and with the result; the page loads
under its CSP with no console error and asks nothing of the outside world; the CDS hooks
themselves still want a client JWT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.browser.conftest import Watched
from tests.browser.patient import LOW_RISK, about_me, answer, answer_all

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))",
        WCAG,
    )
    return found


def test_no_wcag_violations_empty_urgent_and_finished(auditor: Watched) -> None:
    page = auditor.open()
    assert violations(page) == []
    answer(page, "2.1", "Yes")
    page.locator("#urgent-emergency").wait_for(state="visible", timeout=5_000)
    assert violations(page) == []
    answer(page, "2.1", "No")
    page.locator("#urgent").wait_for(state="hidden", timeout=5_000)
    answer_all(page, LOW_RISK)
    about_me(page)
    page.get_by_role("button", name="Send my answers to the clinic").click()
    page.locator("#result").wait_for(state="visible", timeout=15_000)
    assert violations(page) == []


def test_every_question_has_a_label_and_every_radio_group_a_name(patient: Watched) -> None:
    page = patient.open()
    groups = page.get_by_role("radiogroup")
    assert groups.count() >= 20
    for index in range(groups.count()):
        name = groups.nth(index).evaluate(
            "g => document.getElementById(g.getAttribute('aria-labelledby')).textContent.trim()"
        )
        assert len(name) > 10
    for label in ("How many hours ago did the pain begin", "How bad is the pain right now"):
        assert page.get_by_label(label).count() == 1
    assert page.get_by_label("Your full name").count() == 1
    assert page.get_by_label("Date of birth").count() == 1


def test_loads_under_its_csp_with_no_error_and_no_outside_request(patient: Watched) -> None:
    page = patient.open()
    answer(page, "2.1", "Yes")
    page.locator("#urgent").wait_for(state="visible", timeout=5_000)
    assert patient.console_errors == []
    assert patient.outside_requests == []
    assert (
        "script-src 'self'"
        in (page.request.get(patient.base_url + "/intake").headers["content-security-policy"])
    )


def test_the_hooks_still_need_a_client_jwt(patient: Watched) -> None:
    page = patient.open()
    status = page.evaluate(
        """async () => (await fetch('/cds-services/backpain-redflags-intake', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({hook: 'questionnaire-inprogress', hookInstance: 'x',
                                  context: {}})})).status"""
    )
    assert status == 401
