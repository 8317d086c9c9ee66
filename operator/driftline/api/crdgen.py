"""Generate CustomResourceDefinitions from the pydantic models.

pydantic emits JSON Schema (draft 2020-12, with $refs and anyOf-null for optional
fields); Kubernetes wants a structural OpenAPI v3.0 schema: everything inlined, one
type per node, no additionalProperties: false, boolean exclusive bounds. This module
does that translation, and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema, to_jsonable_python

from driftline.api import RESOURCES
from driftline.api.common import GROUP, VERSION, ResourceModel, cel, cel_string

CATEGORY = "driftline"
_DROPPED_KEYS = frozenset({"title", "$defs"})


class _WithFactoryDefaults(GenerateJsonSchema):
    """pydantic leaves default_factory values out of schemas; a CRD should show them,
    so that the API server applies them and `kubectl get -o yaml` tells the truth."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        factory = schema.get("default_factory")
        if factory is None:
            return super().default_schema(schema)
        json_schema = self.generate_inner(schema["schema"])
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        elif isinstance(value, list):
            value = [
                v.model_dump(mode="json", by_alias=True, exclude_none=True)
                if isinstance(v, BaseModel)
                else v
                for v in value
            ]
        json_schema["default"] = to_jsonable_python(value)
        return json_schema


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs and collapse optional (anyOf with null) into the non-null branch."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        # the referencing field's own description and extras win over the model's
        target.update(node)
        node = target
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf with {len(branches)} non-null branches")
        branch = _resolve(branches[0], defs)
        merged = dict(branch)
        for key, value in node.items():
            if key == "x-kubernetes-validations" and key in merged:
                merged[key] = merged[key] + value
            else:
                merged[key] = value
        node = merged
        if node.get("default", 0) is None:
            del node["default"]
    return _clean({key: _resolve(value, defs) for key, value in node.items()})


def _map_key_rule(node: dict[str, Any]) -> None:
    """Typed map keys (pydantic's patternProperties and propertyNames) as a CEL rule.

    A structural schema cannot constrain map keys; Kubernetes checks them only in CEL,
    so the key type's pattern and length become `self.all(k, ...)` and the value schema
    becomes additionalProperties.
    """
    pattern_properties = node.pop("patternProperties", None)
    key_schema = node.pop("propertyNames", None) or {}
    conditions: list[str] = []
    if "maxLength" in key_schema:
        conditions.append(f"k.size() <= {key_schema['maxLength']}")
    if pattern_properties:
        ((key_pattern, value_schema),) = pattern_properties.items()
        node["additionalProperties"] = value_schema
        conditions.append(f"k.matches({cel_string(key_pattern)})")
    if not conditions:
        return
    if not key_schema.get("description"):
        raise ValueError("a constrained map key needs a description: it is the rule's message")
    rule = cel(
        f"self.all(k, {' && '.join(conditions)})",
        f"every key must be {key_schema['description']}",
    )
    node["x-kubernetes-validations"] = [*node.get("x-kubernetes-validations", []), rule]


def _clean(node: dict[str, Any]) -> dict[str, Any]:
    for key in _DROPPED_KEYS & node.keys():
        del node[key]
    if "patternProperties" in node or "propertyNames" in node:
        _map_key_rule(node)
    if node.get("additionalProperties") in (False, True):
        del node["additionalProperties"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, base in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[base] = node[bound]
            node[bound] = True
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if "properties" in node and "type" not in node:
        node["type"] = "object"
    return node


def _strip_defaults(node: Any) -> Any:
    """Status is written by the operator: the API server must not invent values there."""
    if isinstance(node, dict):
        return {k: _strip_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_strip_defaults(item) for item in node]
    return node


def openapi_schema(model: type[ResourceModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of one resource."""
    raw = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults
    )
    defs = raw.get("$defs", {})
    properties = raw["properties"]
    spec = _resolve(properties["spec"], defs)
    status = _strip_defaults(_resolve(properties["status"], defs))
    return {
        "type": "object",
        "description": (model.__doc__ or "").strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd(model: type[ResourceModel]) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource."""
    subresources: dict[str, Any] = {"status": {}}
    if model.scale:
        subresources["scale"] = dict(model.scale)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{model.plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "driftline",
                "app.kubernetes.io/part-of": "driftline",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": model.kind_name,
                "listKind": f"{model.kind_name}List",
                "plural": model.plural,
                "singular": model.kind_name.lower(),
                "shortNames": list(model.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                    "subresources": subresources,
                    "additionalPrinterColumns": [dict(c) for c in model.printer_columns],
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every resource."""
    return {f"{m.plural}.{GROUP}.yaml": crd(m) for m in RESOURCES}


def render_yaml(document: dict[str, Any]) -> str:
    header = "# Generated by `driftline crds` from operator/driftline/api. Do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=100)
