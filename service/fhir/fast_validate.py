"""The fhir.resources R4B verdict on a QuestionnaireResponse, without its Python per element.

fhir.resources' models are pydantic models: pydantic-core (Rust) checks every
primitive, but each nested element goes back through Python four times
(``FHIRAbstractModel.__init__``, a *before* model validator that refuses nulls in
lists of elements, FhirBase's wrap validator that calls ``model_validate`` on the
element, and an *after* model validator for choice types and required
primitives). That Python is ~95 % of the cost of validating an intake.

``CompiledModel`` derives one pydantic-core schema from the models' own core
schemas, rewritten so the same checks run natively:

* each nested element is a reference to its class's rewritten schema: pydantic-core
  builds the same fhir.resources class without calling ``__init__``;
* FHIRAbstractModel's *after* validator becomes a check compiled per class from the
  same metadata (``get_one_of_many_fields``, ``get_required_fields``), attached only
  to the classes that have one; its *before* validator becomes list items that
  refuse null (as it does: lists of complex elements, ``_field`` lists excepted);
* every primitive keeps its schema untouched (the same regexes, the same coercions,
  the same Python date, time and decimal validators); any other model validator is
  kept as it is;
* contained resources: the types given (Questionnaire by default), by ``resourceType``.

This path may refuse what the reference accepts (a ``resource_type`` key, an element
given as a JSON string, another contained resource type...), never the reverse:
``validate`` returns None whenever it is not sure, and the caller then asks
fhir.resources, which stays the reference (and words the errors). The differential
test ``tests/unit/test_validation_equivalence.py`` holds both to the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic_core import SchemaValidator, ValidationError

_AFTER = FHIRAbstractModel.validate_after_model_construction
_BEFORE = FHIRAbstractModel.reject_null_complex_elements.__func__
_WRAP_QUALNAME = "FhirBase.__get_pydantic_core_schema__.<locals>._validate"
#: dropped from the rewritten schemas: serializers (never used here), the original refs
_DROPPED = frozenset({"serialization", "ref"})


class NotCompilable(RuntimeError):
    """The models' core schemas are not shaped as this module expects (a new pydantic?)."""


def _function(node: Mapping[str, Any]) -> Any:
    spec = node.get("function")
    return spec.get("function") if isinstance(spec, Mapping) else spec


def _is(function: Any, target: Any) -> bool:
    return getattr(function, "__func__", function) is target


def _wrapped_model(function: Any) -> tuple[type[FhirBase], bool]:
    """The FhirBase type a ``_validate`` wrap closes over, and whether it picks by resourceType."""
    cells = dict(zip(function.__code__.co_freevars, function.__closure__ or (), strict=True))
    source = cells["source_type"].cell_contents
    if not (isinstance(source, type) and issubclass(source, FhirBase)):
        raise NotCompilable(f"unexpected FhirBase wrap over {source!r}")
    return source, issubclass(source, FhirElementOrResourceBase)


def _one_of_many(cls: type[FHIRAbstractModel]) -> list[tuple[frozenset[str], bool]]:
    sample = cls.model_construct()
    groups = []
    for fields in sample.get_one_of_many_fields().values():
        extra = cls.model_fields[fields[0]].json_schema_extra
        required = isinstance(extra, Mapping) and extra.get("one_of_many_required") is True
        groups.append((frozenset(fields), required))
    return groups


def _required(cls: type[FHIRAbstractModel]) -> frozenset[str]:
    """Fields of the primitives ``cls`` requires (present, or their ``_field`` extended)."""
    sample = cls.model_construct()
    aliases = cls.get_alias_mapping()
    return frozenset(aliases[name] for name, _ in sample.get_required_fields())


def _choice_check(cls: type[FHIRAbstractModel]) -> Callable[[Any], Any] | None:
    """The choice-type half of ``validate_after_model_construction``, compiled for ``cls``
    (None when ``cls`` has no choice type): at most one ``value[x]``, one if required."""
    groups = _one_of_many(cls)
    if not groups:
        return None

    def check(model: Any) -> Any:
        given = model.__pydantic_fields_set__
        for fields, needed in groups:
            present = fields & given
            if needed or len(present) > 1:  # a field given as null is no value
                values = model.__dict__
                found = [field for field in present if values[field] is not None]
                if len(found) > 1 or (needed and not found):
                    raise ValueError(f"{cls.__name__}: one of {sorted(fields)} expected")
        return model

    return check


def _required_natively(field: Mapping[str, Any]) -> dict[str, Any]:
    """The field without its default and not nullable: pydantic-core then requires it."""
    schema = field["schema"]
    while schema.get("type") in {"default", "nullable"}:
        schema = schema["schema"]
    return {**field, "schema": schema}


def _resource_choice(resource_type: str, reference: dict[str, Any]) -> dict[str, Any]:
    def strip(value: Any) -> Any:
        if not isinstance(value, dict) or value.get("resourceType") != resource_type:
            raise ValueError("not decided on the fast path")
        return {key: item for key, item in value.items() if key != "resourceType"}

    return {
        "type": "function-before",
        "function": {"type": "no-info", "function": strip},
        "schema": reference,
    }


def _discriminator(value: Any) -> Any:
    return value.get("resourceType") if isinstance(value, dict) else None


class _Compiler:
    def __init__(self, contained: Iterable[type[FHIRAbstractModel]]) -> None:
        self.definitions: dict[str, Any] = {}
        self.contained = tuple(contained)
        #: element names required here and not on the reference (see CompiledModel)
        self.required: set[str] = set()

    def ref(self, cls: type[FHIRAbstractModel]) -> dict[str, Any]:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name not in self.definitions:
            self.definitions[name] = {}  # reserved: recursion (Reference.identifier.assigner)
            self.definitions[name] = self.model(cls, name)
        return {"type": "definition-ref", "schema_ref": name}

    def model(self, cls: type[FHIRAbstractModel], name: str) -> dict[str, Any]:
        node: Mapping[str, Any] = cls.__pydantic_core_schema__
        check, required = None, frozenset[str]()
        if node.get("type") == "function-after" and _is(_function(node), _AFTER):
            check, required = _choice_check(cls), _required(cls)
            node = node["schema"]
        if node.get("type") != "model" or node.get("cls") is not cls:
            raise NotCompilable(f"{cls.__name__}: not a model schema")
        inner = self.rewrite(node["schema"], cls, required)
        compiled: dict[str, Any] = {
            key: value for key, value in node.items() if key not in _DROPPED
        }
        compiled.update(schema=inner, custom_init=False)
        if check is not None:
            compiled = {
                "type": "function-after",
                "function": {"type": "no-info", "function": check},
                "schema": compiled,
            }
        compiled["ref"] = name
        return compiled

    def rewrite(
        self, node: Any, owner: type[FHIRAbstractModel], required: frozenset[str] = frozenset()
    ) -> Any:
        if isinstance(node, list):
            return [self.rewrite(item, owner) for item in node]
        if not isinstance(node, Mapping):
            return node
        kind = node.get("type")
        if kind in {"function-before", "function-after", "function-wrap", "function-plain"}:
            function = _function(node)
            if _is(function, _BEFORE):
                return self.rewrite(node["schema"], owner, required)
            if _is(function, _AFTER):
                raise NotCompilable(f"{owner.__name__}: a nested after validator")
            if getattr(function, "__qualname__", "") == _WRAP_QUALNAME:
                return self.element(function)
        if kind == "model-fields":
            return self.fields(node, owner, required)
        if kind in {"definitions", "definition-ref", "model"}:
            raise NotCompilable(f"{owner.__name__}: unexpected {kind} schema")
        return {
            key: (value if key == "metadata" else self.rewrite(value, owner, required))
            for key, value in node.items()
            if key not in _DROPPED
        }

    def element(self, wrap: Any) -> dict[str, Any]:
        source, by_resource_type = _wrapped_model(wrap)
        if not by_resource_type:
            return self.ref(source.get_model_klass())
        if source.get_model_klass().__name__ != "Resource":
            raise NotCompilable(f"{source.__name__}: only Resource choices are compiled")
        choices = {cls.get_resource_type(): self.ref(cls) for cls in self.contained}
        return {
            "type": "tagged-union",
            "choices": {tag: _resource_choice(tag, ref) for tag, ref in choices.items()},
            "discriminator": _discriminator,
        }

    def fields(
        self, node: Mapping[str, Any], owner: type[FHIRAbstractModel], required: frozenset[str]
    ) -> dict[str, Any]:
        refusing_null = _refuses_null_items(owner)
        fields = {}
        for name, field in node["fields"].items():
            schema = self.rewrite(field["schema"], owner)
            if name in refusing_null and _nullable_items(schema):
                raise NotCompilable(f"{owner.__name__}.{name}: a list of elements that takes null")
            fields[name] = {**field, "schema": schema}
            if name in required:
                fields[name] = _required_natively(fields[name])
                self.required.add(str(field.get("validation_alias", name)))
        rest = {k: self.rewrite(v, owner) for k, v in node.items() if k not in ("fields",)}
        return {**rest, "fields": fields}


def _refuses_null_items(cls: type[FHIRAbstractModel]) -> frozenset[str]:
    """The list fields FHIRAbstractModel.reject_null_complex_elements checks on ``cls``."""
    return frozenset(
        name
        for name, field in cls.model_fields.items()
        if is_list_type(field) and not is_primitive_type(field) and not name.endswith("__ext")
    )


def _nullable_items(schema: Mapping[str, Any]) -> bool:
    while schema.get("type") in {"default", "nullable"}:
        schema = schema["schema"]
    return schema.get("type") == "list" and schema["items_schema"].get("type") == "nullable"


class CompiledModel:
    """A fast, native validator with fhir.resources' verdict for one resource class."""

    def __init__(
        self,
        resource: type[FHIRAbstractModel],
        contained: Iterable[type[FHIRAbstractModel]] = (Questionnaire,),
    ) -> None:
        if not (isinstance(resource, type) and issubclass(resource, FHIRAbstractModel)):
            raise NotCompilable(f"{resource!r} is not a fhir.resources model")
        compiler = _Compiler(contained)
        root = compiler.ref(resource)
        self.resource = resource
        self.resource_type = resource.get_resource_type()
        #: Required primitives (``status``, ``linkId``...) are required here outright: the
        #: reference also accepts them absent or null when their ``_field`` extension has
        #: extensions; such input goes to the reference.
        self.required_elements = frozenset(compiler.required)
        self._validator = SchemaValidator(
            {
                "type": "definitions",
                "schema": root,
                "definitions": list(compiler.definitions.values()),
            }
        )

    def validate(self, data: Mapping[str, Any]) -> Any | None:
        """The model fhir.resources would build from ``data``, or None when not sure.

        None means: ask fhir.resources (the input is probably invalid, or uses something
        this path does not decide).
        """
        if data.get("resourceType") != self.resource_type:
            return None
        body = {key: value for key, value in data.items() if key != "resourceType"}
        try:
            return self._validator.validate_python(body)
        except ValidationError:
            return None
        except Exception:  # a crash in a kept validator: the reference decides
            return None
