"""The OpenAPI documents kube-apiserver serves, for the registry's resources (pure).

`/openapi/v2` is one Swagger 2.0 document; `/openapi/v3` lists one OpenAPI 3.0 document per
group version (`/openapi/v3/apis/apps/v1`). kubectl reads the v3 ones: `kubectl explain`
prints from their schemas, and `kubectl apply` checks that a kind's PATCH operation takes
the `fieldValidation` parameter, and then leaves field validation to the server. Built-in
kinds take Kubernetes' own definitions (`builtin_schemas`); a custom resource takes its
CRD's `openAPIV3Schema`, with the standard `apiVersion`, `kind` and `metadata` added, as
kube-apiserver publishes it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from driftline.apiserver.builtin_schemas import (
    DEFINITION_REF,
    KUBERNETES_VERSION,
    builtin_definitions,
    definition_of,
)
from driftline.apiserver.resources import ResourceType

Schema = dict[str, Any]
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
V3_REF = "#/components/schemas/"
INFO = {"title": "Kubernetes", "version": KUBERNETES_VERSION}

_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": (
        "fieldValidation instructs the server on how to handle objects in the request "
        "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
        "- Ignore, - Warn (the default), - Strict."
    ),
    "schema": {"type": "string", "uniqueItems": True},
}
_DRY_RUN = {
    "name": "dryRun",
    "in": "query",
    "description": "When present, indicates that modifications should not be persisted.",
    "schema": {"type": "string", "uniqueItems": True},
}
_FIELD_MANAGER = {
    "name": "fieldManager",
    "in": "query",
    "description": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "schema": {"type": "string", "uniqueItems": True},
}
_FORCE = {
    "name": "force",
    "in": "query",
    "description": "Force is going to force Apply requests; it must be unset for non-apply patch requests.",
    "schema": {"type": "boolean", "uniqueItems": True},
}


def definition_name(resource: ResourceType) -> str:
    """kube-apiserver's name for a custom kind: the group reversed, then version and kind."""
    reversed_group = ".".join(reversed(resource.group.split(".")))
    return f"{reversed_group}.{resource.version}.{resource.kind}"


def _gvk(resource: ResourceType) -> dict[str, str]:
    return {"group": resource.group, "version": resource.version, "kind": resource.kind}


def custom_definition(resource: ResourceType) -> Schema:
    """A CRD version's schema as published: standard fields added, its kind named."""
    schema: Schema = copy.deepcopy(resource.schema) if resource.schema else {"type": "object"}
    if resource.schema is None:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    properties = schema.setdefault("properties", {})
    properties.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
    )
    properties.setdefault(
        "kind",
        {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
    )
    properties["metadata"] = {
        "$ref": DEFINITION_REF + OBJECT_META,
        "description": "Standard object's metadata.",
    }
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [_gvk(resource)]
    return schema


def kind_definitions(resources: Iterable[ResourceType]) -> dict[ResourceType, str]:
    """The definition name of each resource's kind (built-in kinds Kubernetes does not describe are left out)."""
    builtins = builtin_definitions()
    names: dict[ResourceType, str] = {}
    for resource in resources:
        if resource.custom:
            names[resource] = definition_name(resource)
        else:
            found = definition_of(builtins, resource.group, resource.version, resource.kind)
            if found is not None:
                names[resource] = found
    return names


def all_definitions(resources: Iterable[ResourceType]) -> dict[str, Schema]:
    """Every definition: the built-in ones and one per served custom kind."""
    definitions = dict(builtin_definitions())
    for resource in resources:
        if resource.custom:
            definitions[definition_name(resource)] = custom_definition(resource)
    return definitions


def object_schema(resources: Iterable[ResourceType], resource: ResourceType) -> Schema | None:
    """The schema of one resource's kind, its references resolvable in `all_definitions`."""
    resources = list(resources)
    name = kind_definitions([resource]).get(resource)
    if name is None:
        return None
    return all_definitions(resources).get(name)


def _closure(definitions: dict[str, Schema], roots: Iterable[str]) -> dict[str, Schema]:
    wanted: dict[str, Schema] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in wanted or name not in definitions:
            continue
        wanted[name] = definitions[name]
        pending.extend(_references(definitions[name]))
    return dict(sorted(wanted.items()))


def _references(schema: Any) -> list[str]:
    found: list[str] = []
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(DEFINITION_REF):
                found.append(ref[len(DEFINITION_REF) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _api_prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _ref(name: str, v3: bool) -> Schema:
    return {"$ref": (V3_REF if v3 else DEFINITION_REF) + name}


def _response(name: str, v3: bool) -> Schema:
    if v3:
        return {"content": {"application/json": {"schema": _ref(name, v3)}}, "description": "OK"}
    return {"description": "OK", "schema": _ref(name, v3)}


def _operation(
    resource: ResourceType,
    action: str,
    result: str,
    v3: bool,
    *,
    parameters: tuple[Schema, ...] = (),
    body: str | None = None,
    patch: bool = False,
) -> Schema:
    gvk = _gvk(resource)
    if action == "patch" or result == SCALE:
        gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"} if result == SCALE else gvk
    operation: Schema = {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": {"200": _response(result, v3), "401": {"description": "Unauthorized"}},
    }
    params = [p if v3 else _v2_parameter(p) for p in parameters]
    if body is not None:
        if v3:
            media_types = _patch_media_types(resource) if patch else ("application/json",)
            operation["requestBody"] = {
                "content": {m: {"schema": _ref(body, v3)} for m in media_types},
                "required": True,
            }
        else:
            params.append(
                {"name": "body", "in": "body", "required": True, "schema": _ref(body, v3)}
            )
            if patch:
                operation["consumes"] = list(_patch_media_types(resource))
    if params:
        operation["parameters"] = params
    return operation


def _v2_parameter(parameter: Schema) -> Schema:
    converted = {k: v for k, v in parameter.items() if k != "schema"}
    converted.update(parameter.get("schema", {}))
    return converted


def _patch_media_types(resource: ResourceType) -> tuple[str, ...]:
    media_types = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ]
    if not resource.custom:  # as kube-apiserver: strategic merge patch for built-in kinds only
        media_types.append("application/strategic-merge-patch+json")
    return tuple(media_types)


def _paths(resource: ResourceType, kind: str, v3: bool) -> dict[str, Schema]:
    prefix = _api_prefix(resource.group, resource.version)
    scope = f"{prefix}/namespaces/{{namespace}}" if resource.namespaced else prefix
    collection, item = f"{scope}/{resource.plural}", f"{scope}/{resource.plural}/{{name}}"
    writes = (_FIELD_VALIDATION, _FIELD_MANAGER, _DRY_RUN)
    paths: dict[str, Schema] = {
        collection: {
            "get": _operation(resource, "list", kind, v3),
            "post": _operation(resource, "post", kind, v3, parameters=writes, body=kind),
            "delete": _operation(resource, "deletecollection", STATUS, v3, body=DELETE_OPTIONS),
        },
        item: {
            "get": _operation(resource, "get", kind, v3),
            "put": _operation(resource, "put", kind, v3, parameters=writes, body=kind),
            "patch": _operation(
                resource, "patch", kind, v3, parameters=(*writes, _FORCE), body=PATCH, patch=True
            ),
            "delete": _operation(resource, "delete", STATUS, v3, body=DELETE_OPTIONS),
        },
    }
    if resource.status:
        paths[f"{item}/status"] = {
            "get": _operation(resource, "get", kind, v3),
            "put": _operation(resource, "put", kind, v3, parameters=writes, body=kind),
            "patch": _operation(
                resource, "patch", kind, v3, parameters=(*writes, _FORCE), body=PATCH, patch=True
            ),
        }
    if resource.scale is not None:
        paths[f"{item}/scale"] = {
            "get": _operation(resource, "get", SCALE, v3),
            "put": _operation(resource, "put", SCALE, v3, parameters=writes, body=SCALE),
        }
    shared = [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    ]
    namespace = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
    for path, operations in paths.items():
        parameters = ([namespace] if resource.namespaced else []) + (
            shared if "{name}" in path else []
        )
        if parameters:
            operations["parameters"] = [p if v3 else _v2_parameter(p) for p in parameters]
    return paths


def _document(resources: list[ResourceType], served: list[ResourceType], v3: bool) -> Schema:
    kinds = kind_definitions(served)
    definitions = all_definitions(resources)
    paths: dict[str, Schema] = {}
    for resource, kind in kinds.items():
        paths.update(_paths(resource, kind, v3))
    schemas = _closure(definitions, [*kinds.values(), STATUS, PATCH, DELETE_OPTIONS, SCALE])
    if not v3:
        return {"swagger": "2.0", "info": INFO, "paths": paths, "definitions": schemas}
    document = {
        "openapi": "3.0.0",
        "info": INFO,
        "paths": paths,
        "components": {"schemas": schemas},
    }
    # References inside the definitions point at #/definitions/; v3 keeps them in components.
    rewritten: Schema = json.loads(json.dumps(document).replace(f'"{DEFINITION_REF}', f'"{V3_REF}'))
    return rewritten


def v2_document(resources: Iterable[ResourceType]) -> Schema:
    """The Swagger 2.0 document of every served resource."""
    listed = list(resources)
    return _document(listed, listed, v3=False)


def group_version_path(group: str, version: str) -> str:
    """The key of a group version in /openapi/v3: `api/v1` or `apis/<group>/<version>`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def v3_document(resources: Iterable[ResourceType], group: str, version: str) -> Schema | None:
    """The OpenAPI 3.0 document of one group version; None when it is not served."""
    listed = list(resources)
    served = [r for r in listed if r.group == group and r.version == version]
    if not served:
        return None
    return _document(listed, served, v3=True)


def content_hash(serialized: bytes) -> str:
    """What kubectl caches a v3 document under (kube-apiserver sends a hash of its content)."""
    return hashlib.sha512(serialized).hexdigest().upper()


def served_group_versions(resources: Iterable[ResourceType]) -> list[tuple[str, str]]:
    return sorted({(r.group, r.version) for r in resources})


def v3_index(hashes: dict[str, str]) -> Schema:
    """/openapi/v3: where each group version's document is (keyed as `group_version_path`
    gives), with the hash of its content."""
    return {
        "paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            for key, digest in sorted(hashes.items())
        }
    }
