"""marshmallow schemas for the CDS Hooks 2.0 envelopes (request and feedback)."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from service.http.errors import Problem


class FhirAuthorizationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    access_token = fields.String(required=True, validate=validate.Length(min=1))
    token_type = fields.String(required=True, validate=validate.Equal("Bearer"))
    expires_in = fields.Integer(required=True)
    scope = fields.String(required=True)
    subject = fields.String(required=True)
    patient = fields.String(load_default=None)


class HookRequestSchema(Schema):
    """CDS Hooks 2.0 §HTTP Request."""

    class Meta:
        unknown = EXCLUDE

    hook = fields.String(required=True, validate=validate.Length(min=1, max=200))
    hookInstance = fields.UUID(required=True)
    context = fields.Dict(keys=fields.String(), required=True)
    prefetch = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)
    fhirServer = fields.Url(load_default=None, allow_none=True, require_tld=False)
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema, load_default=None, allow_none=True)

    @validates_schema
    def _token_needs_server(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("fhirAuthorization") and not data.get("fhirServer"):
            raise ValidationError("fhirAuthorization requires fhirServer", "fhirAuthorization")


class OverrideReasonSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    reason = fields.Dict(load_default=None)
    userComment = fields.String(load_default=None)


class FeedbackItemSchema(Schema):
    """CDS Hooks 2.0 §Feedback."""

    class Meta:
        unknown = EXCLUDE

    card = fields.UUID(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(fields.Dict(keys=fields.String()), load_default=list)
    overrideReason = fields.Nested(OverrideReasonSchema, load_default=None)
    outcomeTimestamp = fields.AwareDateTime(required=True)


class FeedbackSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    feedback = fields.List(
        fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1, max=100)
    )


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix, "; ".join(messages))]
    if isinstance(messages, list):
        out = []
        for index, value in enumerate(messages):
            out.extend(_flatten(value, f"{prefix}[{index}]"))
        return out
    return [(prefix, str(messages))]


def load_or_400(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    """Validate ``body``; any error becomes one 400 naming every bad field."""
    try:
        data: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        problems = _flatten(exc.messages)
        text = "; ".join(f"{path}: {msg}" for path, msg in problems)
        raise Problem(
            400,
            f"Invalid request: {text}",
            code="invalid",
            expression=[path for path, _ in problems],
        ) from exc
    return data
