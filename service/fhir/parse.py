"""FHIR R4 JSON in, validated fhir.resources R4B models out; or ``InvalidResource`` saying where.

The only module that imports fhir.resources' models for validation. EHRs send
R4, so the R4B package (R4 semantics for these resources) is the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from service.fhir.fast_validate import CompiledModel, NotCompilable

_MAX_REPORTED_ERRORS = 10
log = logging.getLogger(__name__)


class InvalidResource(ValueError):
    """Input that is not the FHIR resource expected; ``expression`` locates the problem."""

    def __init__(self, message: str, expression: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.expression: tuple[str, ...] = tuple(expression)


def _location(resource_type: str, loc: Sequence[int | str]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _validate(model: type[Any], data: object, resource_type: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidResource(f"a {resource_type} must be a JSON object", (resource_type,))
    found = data.get("resourceType")
    if found != resource_type:
        raise InvalidResource(
            f"expected resourceType {resource_type!r}, got {found!r}",
            (f"{resource_type}.resourceType",),
        )
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        errors = exc.errors()[:_MAX_REPORTED_ERRORS]
        where = tuple(_location(resource_type, e["loc"]) for e in errors)
        reasons = "; ".join(
            f"{_location(resource_type, e['loc'])}: {' '.join(str(e['msg']).split())}"
            for e in errors
        )
        raise InvalidResource(f"{resource_type} is not valid FHIR R4: {reasons}", where) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidResource(
            f"{resource_type} is not valid FHIR R4: {exc}", (resource_type,)
        ) from None
    except LookupError:  # fhir.resources: a contained resourceType it does not know
        raise InvalidResource(
            f"{resource_type} is not valid FHIR R4: a contained resource has an unknown "
            "resourceType",
            (f"{resource_type}.contained",),
        ) from None
    except Exception as exc:  # fhir.resources crashed on hostile input: still not valid FHIR
        log.warning("fhir.resources raised %s validating a %s", type(exc).__name__, resource_type)
        raise InvalidResource(
            f"{resource_type} is not valid FHIR R4: an element has a value of the wrong shape",
            (resource_type,),
        ) from None


class ResponseParser:
    """Parses QuestionnaireResponses with fhir.resources' verdict and model, decided on a
    compiled fast path when it can be (built here, ~0.1 s: make one per process and keep
    it, as the ``Screener`` does); what that path does not accept (invalid input above
    all) goes to fhir.resources, which words every rejection."""

    def __init__(self, *, fast: bool = True) -> None:
        """``fast=False``: fhir.resources alone, nothing compiled (one-off callers)."""
        self.compiled: CompiledModel | None = None
        if not fast:
            return
        try:
            self.compiled = CompiledModel(QuestionnaireResponse)
        except NotCompilable as exc:
            log.warning("fast FHIR validation unavailable, using fhir.resources only: %s", exc)

    def parse(self, data: object) -> QuestionnaireResponse:
        if self.compiled is not None and isinstance(data, Mapping):
            fast: QuestionnaireResponse | None = self.compiled.validate(data)
            if fast is not None:
                return fast
        return parse_questionnaire_response(data)


def parse_questionnaire_response(data: object) -> QuestionnaireResponse:
    """fhir.resources alone: the reference verdict, and the words of every rejection."""
    qr: QuestionnaireResponse = _validate(QuestionnaireResponse, data, "QuestionnaireResponse")
    return qr


def parse_questionnaire(data: object) -> Questionnaire:
    q: Questionnaire = _validate(Questionnaire, data, "Questionnaire")
    return q


def validate_resource(data: Mapping[str, Any], path: Path) -> None:
    """Validate any R4 resource read from a file; raise ValueError naming file and field."""
    resource_type = str(data.get("resourceType"))
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, LookupError):
        raise InvalidResource(f"{path}: unknown resourceType {resource_type!r}") from None
    try:
        _validate(model, data, resource_type)
    except InvalidResource as exc:
        raise InvalidResource(f"{path}: {exc.message}", exc.expression) from None


def count_items(data: object, limit: int) -> int:
    """Count QR items (groups, nested items, items under answers) in raw JSON; stop past limit.

    Runs before validation, so a hostile QR cannot make validation do unbounded work.
    The same items as ``walk_items`` (objects in ``item`` lists, under items and under
    each answer), counted without building the walk.
    """
    if not isinstance(data, Mapping):
        return 0
    count = 0
    lists = [data.get("item")]
    while lists:
        items = lists.pop()
        if not isinstance(items, list):
            continue
        for item in items:
            if not (type(item) is dict or isinstance(item, Mapping)):
                continue
            count += 1
            if count > limit:
                raise InvalidResource(
                    f"QuestionnaireResponse has more than {limit} items",
                    ("QuestionnaireResponse.item",),
                )
            lists.append(item.get("item"))
            answers = item.get("answer")
            if isinstance(answers, list):
                lists.extend(a.get("item") for a in answers if isinstance(a, Mapping))
    return count
