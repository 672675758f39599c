"""Filling in the intake as a patient would: by the words on the screen, with the mouse or
with the keyboard only."""

from __future__ import annotations

import re
from collections.abc import Mapping

from playwright.sync_api import Page

#: A patient with no red flag, by linkId: the option's label, or a number typed in.
LOW_RISK: dict[str, str | int] = {
    "1.1": "Impact (running, plyometrics)",
    "1.2": 24,
    "1.3": 4,
    "1.4": "No radiation",
    "1.5": "Improving",
    "1.6": "Yes",
    **{link: "No" for link in ("2.1", "2.2", "2.3", "2.4", "2.5")},
    **{link: "No" for link in ("3.1", "3.2", "3.3", "3.4")},
    **{link: "No" for link in ("4.1", "4.2", "4.3", "4.4", "4.5", "4.6")},
    "5.1": "No",
}

#: linkId -> the question as the page shows it (enough words to find it).
QUESTIONS = {
    "1.1": "What kind of exercise were you doing",
    "1.2": "How many hours ago did the pain begin",
    "1.3": "How bad is the pain right now",
    "1.4": "Does the pain spread into your leg",
    "1.5": "Since it began, is the pain improving",
    "1.6": "Have you rested and used self-care",
    "2.1": "new trouble starting to pass urine",
    "2.2": "new loss of bowel control",
    "2.3": "numbness or tingling around your genitals",
    "2.4": "new loss of sexual function",
    "2.5": "pain, numbness or weakness in BOTH legs",
    "3.1": "Do you have numbness in a leg or foot",
    "3.2": "tingling or pins and needles",
    "3.3": "noticeable weakness in a leg or foot",
    "3.4": "Is any numbness, tingling or weakness getting worse",
    "4.1": "fever, chills or sweats",
    "4.2": "lost weight recently without trying",
    "4.3": "Is the pain intense and not eased",
    "4.4": "Have you ever had cancer",
    "4.5": "weakened immune system",
    "4.6": "Have you ever injected drugs",
    "5.1": "Did the pain follow a fall or heavy impact",
}

#: Yes/No/Unknown and the other options, in the order the form lists them.
OPTIONS = {
    "1.1": [
        "Axial loading (squat, deadlift)",
        "Impact (running, plyometrics)",
        "Rotational (kettlebell swing, woodchopper)",
        "Other exercise",
    ],
    "1.4": ["No radiation", "Into the buttock or thigh", "Below the knee"],
    "1.5": ["Improving", "Unchanged", "Worsening"],
}
YES_NO = ["Yes", "No", "Unknown"]


def answer(page: Page, link_id: str, value: str | int) -> None:
    """Click the option, or type the number, as a patient with a mouse would."""
    question = re.compile(re.escape(QUESTIONS[link_id]))
    if isinstance(value, int):
        field = page.get_by_label(question)
        field.fill(str(value))
        field.press("Tab")
        return
    group = page.get_by_role("radiogroup", name=question)
    group.get_by_role("radio", name=value, exact=True).click()


def answer_all(page: Page, answers: Mapping[str, str | int]) -> None:
    for link_id, value in answers.items():
        answer(page, link_id, value)


def about_me(page: Page, name: str = "Alex Example", born: str = "1990-02-01") -> None:
    page.get_by_label("Your full name").fill(name)
    page.get_by_label("Date of birth").fill(born)


def _link_id_of_focus(page: Page) -> tuple[str, str]:
    """(linkId or field id, input type) of the focused element."""
    found = page.evaluate(
        """() => {
            const e = document.activeElement;
            const ref = (e.name && e.name.startsWith('radiogroup_')) ? e.name.slice(11) : e.id;
            return [(ref || '').split('/')[0], e.type || e.tagName.toLowerCase()];
        }"""
    )
    return str(found[0]), str(found[1])


def _focused_option(page: Page, link_id: str) -> int:
    options = OPTIONS.get(link_id, YES_NO)
    label = page.evaluate("() => document.activeElement.closest('label').textContent.trim()")
    return options.index(str(label))


def fill_with_keyboard(
    page: Page, answers: Mapping[str, str | int], name: str, born_mmddyyyy: str
) -> None:
    """Tab from the top of the page to the send button and press Enter: no mouse at all.

    Radio groups: Tab lands on the first option; arrow keys move and choose, Space
    chooses the option in focus. Numbers and text are typed; the date is typed in the
    order its fields appear (en-US: month, day, year).
    """
    page.locator("body").focus()
    for _ in range(200):
        page.keyboard.press("Tab")
        link_id, kind = _link_id_of_focus(page)
        if link_id == "send":
            page.keyboard.press("Enter")
            return
        if link_id == "patient-name":
            page.keyboard.type(name)
        elif link_id == "patient-birthdate":
            page.keyboard.type(born_mmddyyyy)
            while _link_id_of_focus(page)[0] == "patient-birthdate":
                page.keyboard.press("Tab")
            if _link_id_of_focus(page)[0] == "send":
                page.keyboard.press("Enter")
                return
        elif link_id in answers and kind == "radio":
            wanted = OPTIONS.get(link_id, YES_NO).index(str(answers[link_id]))
            moves = wanted - _focused_option(page, link_id)
            if moves == 0:
                page.keyboard.press("Space")
            for _ in range(moves):
                page.keyboard.press("ArrowRight")
        elif link_id in answers:
            page.keyboard.type(str(answers[link_id]))
    raise AssertionError("the send button was never reached with Tab")
