"""The FHIR adapter: R4 JSON in, engine ``Facts`` out. The only package that imports
``fhir.resources``; nothing here knows Flask, SQL or the rules."""

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from service.fhir.facts import extract_facts
from service.fhir.form import FormIndex
from service.fhir.items import walk_items
from service.fhir.parse import (
    InvalidResource,
    ResponseParser,
    count_items,
    parse_questionnaire,
    parse_questionnaire_response,
    validate_resource,
)
from service.fhir.resolve import BundledForms, QuestionnaireFetch, resolve_questionnaire
from service.fhir.vocabulary import Vocabulary

__all__ = [
    "BundledForms",
    "FormIndex",
    "InvalidResource",
    "Questionnaire",
    "QuestionnaireFetch",
    "QuestionnaireResponse",
    "ResponseParser",
    "Vocabulary",
    "count_items",
    "extract_facts",
    "parse_questionnaire",
    "parse_questionnaire_response",
    "resolve_questionnaire",
    "validate_resource",
    "walk_items",
]
