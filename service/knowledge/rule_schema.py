"""The shape of a rule file (``rules/*.yaml``), checked with marshmallow.

Errors are flattened to ``field.path: message`` so a rule author sees the file
and the field; concepts and codes are resolved later, in ``rule_files.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from service.engine import INDICATOR_RANK, PLACEHOLDERS, PREDICATES, URGENCIES

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
VERSION_PATTERN = r"^\d+\.\d+\.\d+$"


class RuleFileError(ValueError):
    """A rule file is wrong; the message names the file and the field."""


class _ConditionField(fields.Field[Any]):
    """A condition tree, checked for shape here; concepts are resolved later."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        _check_condition_shape(value, "")
        return value


def _check_condition_shape(value: Any, where: str) -> None:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValidationError(
            f"{where or 'condition'}: expected a mapping with exactly one key "
            f"(all, any, not, or one of {sorted(PREDICATES)})"
        )
    ((key, arg),) = value.items()
    if key in {"all", "any"}:
        if not isinstance(arg, list) or not arg:
            raise ValidationError(f"{where}{key}: expected a non-empty list of conditions")
        for i, child in enumerate(arg):
            _check_condition_shape(child, f"{where}{key}[{i}].")
    elif key == "not":
        _check_condition_shape(arg, f"{where}not.")
    elif key not in PREDICATES:
        raise ValidationError(f"{where}{key}: unknown predicate; known: {sorted(PREDICATES)}")


class _LinkSchema(Schema):
    class Meta:
        unknown = RAISE

    label = fields.String(required=True, validate=validate.Length(min=1))
    url = fields.Url(required=True, schemes={"https"})
    type = fields.String(load_default="absolute", validate=validate.OneOf(["absolute"]))


class _ActionSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(["create", "update", "delete"]))
    description = fields.String(required=True, validate=validate.Length(min=1))
    resource = fields.Dict(required=True)


class _SuggestionSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    label = fields.String(required=True, validate=validate.Length(min=1, max=139))
    isRecommended = fields.Boolean(load_default=False)
    actions = fields.List(fields.Nested(_ActionSchema), required=True, validate=validate.Length(1))


class _SectionSchema(Schema):
    class Meta:
        unknown = RAISE

    when = _ConditionField(required=True)
    text = fields.String(required=True, validate=validate.Length(min=1))
    #: the paragraph in the patient's voice (default: ``text``)
    patient = fields.String(load_default=None, validate=validate.Length(min=1))


class _TextSchema(Schema):
    """One voice of a card: a summary (< 140 characters) and a markdown detail."""

    class Meta:
        unknown = RAISE

    summary = fields.String(required=True, validate=validate.Length(min=1, max=139))
    detail = fields.String(required=True, validate=validate.Length(min=1))


class _SourceSchema(Schema):
    """A piece of guidance the rule reads (shown on its page, ``GET /rules/{id}``)."""

    class Meta:
        unknown = RAISE

    label = fields.String(required=True, validate=validate.Length(min=1))
    url = fields.Url(load_default=None, schemes={"https"})


class _CardSchema(Schema):
    class Meta:
        unknown = RAISE

    summary = fields.String(required=True, validate=validate.Length(min=1, max=139))
    detail = fields.String(required=True, validate=validate.Length(min=1))
    patient = fields.Nested(_TextSchema, required=True)
    links = fields.List(fields.Nested(_LinkSchema), load_default=list)
    suggestions = fields.List(fields.Nested(_SuggestionSchema), load_default=list)
    selectionBehavior = fields.String(
        load_default=None, validate=validate.OneOf(["at-most-one", "any"])
    )
    overrideReasons = fields.List(fields.String(), load_default=list)
    sections = fields.List(fields.Nested(_SectionSchema), load_default=list)

    @validates_schema
    def _placeholders(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        sections = bool(data.get("sections"))
        _check_placeholders(data["detail"], "detail", ("evidence",), sections)
        _check_placeholders(data["patient"]["detail"], "patient.detail", (), sections)


def _check_placeholders(text: str, where: str, required: tuple[str, ...], sections: bool) -> None:
    found = set(_PLACEHOLDER.findall(text))
    unknown = found - set(PLACEHOLDERS)
    if unknown:
        raise ValidationError(
            f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}", where
        )
    missing = [p for p in required if p not in found]
    if missing:
        raise ValidationError(f"missing placeholder(s) {missing}", where)
    if sections and "sections" not in found:
        raise ValidationError("sections are given but {sections} is not in the text", where)


#: Which urgencies each indicator may carry: the card's colour and its timeline agree.
_URGENCIES_OF = {
    "critical": ("emergency", "same-day"),
    "warning": ("same-day", "soon", "routine"),
    "info": ("routine", "self-care"),
}


class _RuleSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]*$"))
    version = fields.String(required=True, validate=validate.Regexp(VERSION_PATTERN))
    topic = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(list(INDICATOR_RANK)))
    urgency = fields.String(required=True, validate=validate.OneOf(list(URGENCIES)))
    priority = fields.Integer(load_default=100, validate=validate.Range(min=0))
    concepts = fields.List(fields.String(), required=True, validate=validate.Length(1))
    sources = fields.List(fields.Nested(_SourceSchema), required=True, validate=validate.Length(1))
    when = _ConditionField(required=True)
    card = fields.Nested(_CardSchema, required=True)

    @validates_schema
    def _consistent(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        indicator, urgency = data.get("indicator"), data.get("urgency")
        if indicator in _URGENCIES_OF and urgency not in _URGENCIES_OF[indicator]:
            raise ValidationError(
                f"an {indicator} rule takes urgency {' | '.join(_URGENCIES_OF[indicator])}",
                "urgency",
            )
        if indicator in {"critical", "warning"}:
            card = data["card"]
            if not card.get("overrideReasons"):
                raise ValidationError("critical and warning cards need overrideReasons", "card")
            for where, text in (("detail", card["detail"]), ("patient", card["patient"]["detail"])):
                if "{urgency}" not in text:
                    raise ValidationError(
                        "critical and warning cards say how urgent: put {urgency} in the text",
                        f"card.{where}",
                    )


class RuleFileSchema(Schema):
    class Meta:
        unknown = RAISE

    ruleset = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    version = fields.String(required=True, validate=validate.Regexp(VERSION_PATTERN))
    family = fields.String(required=True)
    description = fields.String(load_default="")
    rules = fields.List(fields.Nested(_RuleSchema), required=True, validate=validate.Length(1))


class _VoicesSchema(Schema):
    class Meta:
        unknown = RAISE

    clinician = fields.String(required=True, validate=validate.Length(min=1))
    patient = fields.String(required=True, validate=validate.Length(min=1))


class _UrgencyLevelSchema(_VoicesSchema):
    #: wording that states this level's timeline; no card may use a slower level's
    phrases = fields.List(fields.String(validate=validate.Length(min=3)), load_default=list)


class RuleSetFileSchema(Schema):
    """``rules/ruleset.yaml``: the rule set's name, version, title and urgency wording."""

    class Meta:
        unknown = RAISE

    ruleset = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    version = fields.String(required=True, validate=validate.Regexp(VERSION_PATTERN))
    title = fields.String(required=True, validate=validate.Length(min=1))
    description = fields.String(load_default="")
    urgency = fields.Dict(
        keys=fields.String(validate=validate.OneOf(list(URGENCIES))),
        values=fields.Nested(_UrgencyLevelSchema),
        required=True,
    )
    raised = fields.Nested(_VoicesSchema, required=True)

    @validates_schema
    def _every_level(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        absent = [level for level in URGENCIES if level not in data["urgency"]]
        if absent:
            raise ValidationError(f"wording missing for {absent}", "urgency")


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            name = f"[{key}]" if isinstance(key, int) else (f".{key}" if prefix else str(key))
            if key == "_schema":
                name = ""
            out.extend(flatten_messages(value, prefix + name))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix or '(file)'}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for m in messages for line in flatten_messages(m, prefix)]
    return [f"{prefix or '(file)'}: {messages}"]
