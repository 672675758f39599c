"""The shape of a rule file (``rules/*.yaml``), checked with marshmallow.

Errors are flattened to ``field.path: message`` so a rule author sees the file
and the field; concepts and codes are resolved later, in ``rule_files.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from service.engine import INDICATOR_RANK, PREDICATES

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_ALLOWED_PLACEHOLDERS = frozenset({"evidence", "rule", "missing", "notes", "sections"})
_REQUIRED_PLACEHOLDERS = ("evidence", "rule")
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


class _SourceSchema(Schema):
    class Meta:
        unknown = RAISE

    url = fields.Url(required=True, schemes={"https"})


class _CardSchema(Schema):
    class Meta:
        unknown = RAISE

    summary = fields.String(required=True, validate=validate.Length(min=1, max=139))
    detail = fields.String(required=True, validate=validate.Length(min=1))
    source = fields.Nested(_SourceSchema, required=True)
    links = fields.List(fields.Nested(_LinkSchema), load_default=list)
    suggestions = fields.List(fields.Nested(_SuggestionSchema), load_default=list)
    selectionBehavior = fields.String(
        load_default=None, validate=validate.OneOf(["at-most-one", "any"])
    )
    overrideReasons = fields.List(fields.String(), load_default=list)
    sections = fields.List(fields.Nested(_SectionSchema), load_default=list)

    @validates_schema
    def _placeholders(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        found = set(_PLACEHOLDER.findall(data["detail"]))
        unknown = found - _ALLOWED_PLACEHOLDERS
        if unknown:
            raise ValidationError(
                f"unknown placeholder(s) {sorted(unknown)}; "
                f"allowed: {sorted(_ALLOWED_PLACEHOLDERS)}",
                "detail",
            )
        missing = [p for p in _REQUIRED_PLACEHOLDERS if p not in found]
        if missing:
            raise ValidationError(f"missing placeholder(s) {missing}", "detail")
        if data.get("sections") and "sections" not in found:
            raise ValidationError("sections are given but {sections} is not in detail", "detail")


class _RuleSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]*$"))
    version = fields.String(required=True, validate=validate.Regexp(VERSION_PATTERN))
    topic = fields.String(required=True)
    indicator = fields.String(required=True, validate=validate.OneOf(list(INDICATOR_RANK)))
    priority = fields.Integer(load_default=100, validate=validate.Range(min=0))
    self_care = fields.Boolean(load_default=False)
    concepts = fields.List(fields.String(), required=True, validate=validate.Length(1))
    when = _ConditionField(required=True)
    card = fields.Nested(_CardSchema, required=True)

    @validates_schema
    def _self_care_is_info(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("self_care") and data.get("indicator") != "info":
            raise ValidationError("a self-care rule must be indicator info", "indicator")
        if data.get("indicator") in {"critical", "warning"} and not data["card"].get(
            "overrideReasons"
        ):
            raise ValidationError("critical and warning cards need overrideReasons", "card")


class RuleFileSchema(Schema):
    class Meta:
        unknown = RAISE

    ruleset = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    version = fields.String(required=True, validate=validate.Regexp(VERSION_PATTERN))
    family = fields.String(required=True)
    description = fields.String(load_default="")
    rules = fields.List(fields.Nested(_RuleSchema), required=True, validate=validate.Length(1))


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
