"""OpenAPI definitions of the built-in kinds the local API serves, as kube-apiserver 1.32 has them.

They come from Kubernetes' own OpenAPI document by way of the JSON schemas that the
`kubernetes-validate` package ships (a dev dependency), converted back to OpenAPI form
(`type: [string, "null"]` becomes `type: string`, `#/$defs/` references become
`#/definitions/`), cut to what the served kinds reference, and stored gzipped beside this
module so that the server does not need that package at run time. Regenerate with
`python -m driftline.apiserver.builtin_schemas`; a test checks the stored file is current.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from driftline.apiserver.resources import BUILTIN_RESOURCES, ResourceType

Schema = dict[str, Any]
KUBERNETES_VERSION = "v1.32.0"
DEFINITIONS_FILE = Path(__file__).with_name("builtin_openapi.json.gz")
DEFINITION_REF = "#/definitions/"
# Definitions the API's operations name besides the kinds themselves.
EXTRA_DEFINITIONS = (
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
)
_REF = re.compile(r"#/definitions/([A-Za-z0-9_.-]+)")


@cache
def builtin_definitions() -> dict[str, Schema]:
    """Definition name -> OpenAPI schema, references as `#/definitions/<name>`."""
    with gzip.open(DEFINITIONS_FILE, "rt", encoding="utf-8") as handle:
        definitions: dict[str, Schema] = json.load(handle)
    return definitions


def definition_of(
    definitions: dict[str, Schema], group: str, version: str, kind: str
) -> str | None:
    """The name of the definition that carries this group/version/kind."""
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (
                group,
                version,
                kind,
            ):
                return name
    return None


# --- generation (needs kubernetes-validate) --------------------------------------------


def _from_json_schema(value: Any, name: str = "") -> Any:
    """kubernetes-validate's JSON-schema dialect back to OpenAPI."""
    if isinstance(value, list):
        return [_from_json_schema(v) for v in value]
    if not isinstance(value, dict):
        return value
    result: Schema = {}
    for key, item in value.items():
        if key == "$ref" and isinstance(item, str):
            result[key] = item.replace("#/$defs/", DEFINITION_REF)
        elif key == "type" and isinstance(item, list):
            result[key] = next(t for t in item if t != "null")
        elif key == "properties" and isinstance(item, dict):
            result[key] = {k: _from_json_schema(v) for k, v in item.items()}
        else:
            result[key] = _from_json_schema(item)
    if "oneOf" in result and name.endswith(("IntOrString", "Quantity")):
        # Kubernetes' OpenAPI gives these as strings with a format, not as a oneOf.
        result.pop("oneOf")
        result["type"] = "string"
        result["format"] = "int-or-string" if name.endswith("IntOrString") else "quantity"
        if name.endswith("IntOrString"):
            result["x-kubernetes-int-or-string"] = True
    properties = result.get("properties")
    if isinstance(properties, dict):
        for field in ("apiVersion", "kind"):
            if isinstance(properties.get(field), dict):
                properties[field].pop("enum", None)  # added by the JSON schemas, not the API
    return result


def generate(
    source: dict[str, Schema], resources: Iterable[ResourceType] = BUILTIN_RESOURCES
) -> dict[str, Schema]:
    """The definitions the resources' kinds reference, transitively, in OpenAPI form."""
    converted = {name: _from_json_schema(schema, name) for name, schema in source.items()}
    roots = [definition_of(converted, r.group, r.version, r.kind) for r in resources]
    wanted: set[str] = set()
    pending = [r for r in (*roots, *EXTRA_DEFINITIONS) if r is not None]
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(_REF.findall(json.dumps(converted[name])))
    return {name: converted[name] for name in sorted(wanted)}


def kubernetes_validate_definitions(version: str = KUBERNETES_VERSION) -> dict[str, Schema]:
    import kubernetes_validate  # a dev dependency: needed only to regenerate

    path = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / f"{version}-local"
        / "_definitions.json"
    )
    source: dict[str, Schema] = json.loads(path.read_text())["$defs"]
    return source


def encode(definitions: dict[str, Schema]) -> bytes:
    text = json.dumps(definitions, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


if __name__ == "__main__":
    DEFINITIONS_FILE.write_bytes(encode(generate(kubernetes_validate_definitions())))
    print(f"wrote {DEFINITIONS_FILE}")
