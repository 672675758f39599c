"""What a CDS use case can refuse, in domain terms; the HTTP layer maps each to a status."""

from __future__ import annotations

from collections.abc import Sequence


class BadRequest(Exception):
    """The envelope is well-formed but does not fit this service (HTTP 400)."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


class DataUnavailable(Exception):
    """The QuestionnaireResponse cannot be had (HTTP 412)."""


class QuestionnaireResponseInvalid(Exception):
    """The QR is not valid FHIR, or not this patient's (HTTP 422)."""

    def __init__(self, message: str, expression: Sequence[str]) -> None:
        super().__init__(message)
        self.expression = tuple(expression)


class UnknownCards(Exception):
    """Feedback names cards this service never issued (HTTP 400)."""

    def __init__(self, positions: Sequence[int], uuids: Sequence[str]) -> None:
        super().__init__(
            "Feedback names card(s) this service never issued: "
            + ", ".join(uuids[index] for index in positions)
        )
        self.positions = tuple(positions)
