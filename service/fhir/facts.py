"""A validated QuestionnaireResponse (and its form's index) in, engine ``Facts`` out.

Rules never see a linkId: items are read by their concept (the form's
``item.code`` in the local CodeSystem, or a SNOMED CT / LOINC code the
ConceptMap links to a local question); answers that carry their own meaning
count even when the Questionnaire is unknown. Items disabled by the form's
``enableWhen`` and left unanswered are reported as such (not screened).
"""

from __future__ import annotations

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from service.engine import Facts
from service.fhir.answers import Reading, comparable, read_item_answer, read_self_describing
from service.fhir.form import FormIndex
from service.fhir.items import walk_items
from service.fhir.vocabulary import Vocabulary


def extract_facts(
    qr: QuestionnaireResponse, form: FormIndex | None, vocabulary: Vocabulary
) -> Facts:
    """``form`` is the index of the QR's Questionnaire, or None when it could not be resolved."""
    reading = Reading(vocabulary)
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
    return Facts(
        answers=dict(reading.answers),
        disabled=frozenset(disabled),
        questionnaire_known=form is not None,
        notes=tuple(dict.fromkeys(reading.notes)),
        subject=qr.subject.reference if qr.subject is not None else None,
        status=qr.status or "completed",
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
