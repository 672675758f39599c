"""A validated QuestionnaireResponse (and its form's index) in, engine ``Facts`` out.

Rules never see a linkId: items are read by their concept (the form's
``item.code`` in the local CodeSystem, or a SNOMED CT / LOINC code the
ConceptMap links to a local question); answers that carry their own meaning
count even when the Questionnaire is unknown. Items disabled by the form's
``enableWhen`` and left unanswered are reported as such (not screened).
Every ``valueString`` answer, whatever its item, is also read as free text for
red-flag mentions (``freetext.py``); the Patient's birth date, when the EHR
sends it, gives the age at the time the form was filled in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from service.engine import Answer, Facts, Mention
from service.fhir.answers import Reading, comparable, read_item_answer, read_self_describing
from service.fhir.form import FormIndex
from service.fhir.freetext import FreeText, FreeTextReader
from service.fhir.items import walk_items
from service.fhir.vocabulary import Vocabulary

AGE = "age"
BIRTH_DATE_LINK = "Patient.birthDate"


def extract_facts(
    qr: QuestionnaireResponse,
    form: FormIndex | None,
    vocabulary: Vocabulary,
    reader: FreeTextReader | None = None,
    birth_date: str | None = None,
) -> Facts:
    """``form`` is the index of the QR's Questionnaire, or None when it could not be resolved.

    ``reader`` reads free-text answers (None: they are not read, and the screen says so);
    ``birth_date`` is the Patient's ``birthDate`` (YYYY, YYYY-MM or YYYY-MM-DD).
    """
    reading = Reading(vocabulary)
    texts: list[FreeText] = []
    for item, _ in walk_items(qr.item):
        form_item = form.items.get(item.linkId) if form else None
        concept = form_item.concept if form_item else None
        question = item.text or (form_item.text if form_item else "") or ""
        answers = list(item.answer or [])
        if answers:
            reading.values_by_link.setdefault(item.linkId, []).extend(
                comparable(a) for a in answers
            )
        for answer in answers:
            if answer.valueString is not None and answer.valueString.strip():
                texts.append(FreeText(item.linkId, question, answer.valueString))
            if concept is not None:
                read_item_answer(reading, concept, item.linkId, question, answer)
            else:
                read_self_describing(reading, item.linkId, question, answer)
    disabled = _disabled_concepts(form, reading) if form is not None and form.has_logic else set()
    if form is None:
        canonical, _, version = (qr.questionnaire or "(none given)").partition("|")
        reference = f"{canonical} (version {version})" if version else canonical
        reading.notes.insert(
            0,
            f"The form {reference} could not be resolved (not contained, not bundled, "
            "not on the FHIR server): only self-describing coded answers were read.",
        )
    if birth_date is not None:
        _read_birth_date(reading, birth_date, qr.authored)
    mentions: tuple[Mention, ...] = ()
    unread: tuple[str, ...] = ()
    if texts and reader is not None:
        text_reading = reader.read(texts)
        mentions, unread = text_reading.mentions, text_reading.unread
        reading.notes.extend(text_reading.notes)
    elif texts:
        unread = tuple(dict.fromkeys(t.link_id for t in texts))
        reading.notes.append("Free-text answers were not read by this screen: read them yourself.")
    return Facts(
        answers=dict(reading.answers),
        disabled=frozenset(disabled),
        questionnaire_known=form is not None,
        notes=tuple(dict.fromkeys(reading.notes)),
        subject=qr.subject.reference if qr.subject is not None else None,
        status=qr.status or "completed",
        mentions=mentions,
        unread_text=unread,
    )


def _read_birth_date(reading: Reading, birth_date: str, authored: object) -> None:
    """Age in whole years on the day the form was authored (else today), as an answer.

    A partial date (YYYY or YYYY-MM) gives the oldest age it allows: the safer reading
    for rules that look for an older age.
    """
    on = authored.date() if isinstance(authored, datetime) else datetime.now(UTC).date()
    parts = birth_date.split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else 1
        day = int(parts[2][:2]) if len(parts) > 2 else 1
        born = date(year, month, day)
    except (ValueError, IndexError):
        reading.notes.append("The patient's birth date in the record could not be read.")
        return
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if years < 0:
        reading.notes.append("The patient's birth date in the record is after the form's date.")
        return
    reading.keep(
        Answer(
            AGE,
            years,
            BIRTH_DATE_LINK,
            "Age (from the birth date in the patient's record)",
            None,
            f"{years} years",
        )
    )


def _disabled_concepts(form: FormIndex, reading: Reading) -> set[str]:
    """Concepts whose items the form's logic disables and that carry no answer."""
    enabled = form.enabled_link_ids(reading.values_by_link)
    disabled: set[str] = set()
    for link_id, item in form.items.items():
        if item.concept is None or enabled[link_id]:
            continue
        if item.concept in reading.answers:
            if link_id in reading.values_by_link:
                reading.notes.append(
                    f"'{item.text or item.concept}' was answered although "
                    "the form's logic disables it; the answer was kept."
                )
            continue
        disabled.add(item.concept)
    return disabled
