"""Check Driftline manifests the way the API server will: schema, defaults, CEL rules."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from driftline.api import RESOURCES
from driftline.api.common import API_VERSION, GROUP, ResourceModel
from driftline.api.crdgen import openapi_schema
from driftline.api.validation import (
    FieldError,
    RuleObserver,
    invalid_message,
    prepare_custom_object,
)

MODELS: dict[str, type[ResourceModel]] = {m.kind_name: m for m in RESOURCES}


@cache
def schema_for(kind: str) -> dict[str, Any]:
    return openapi_schema(MODELS[kind])


def check_manifest(
    document: dict[str, Any],
    old: dict[str, Any] | None = None,
    observer: RuleObserver | None = None,
) -> tuple[dict[str, Any], list[FieldError]]:
    """The object as the API server would store it, and the errors that would reject it."""
    kind = document.get("kind")
    if document.get("apiVersion") != API_VERSION or kind not in MODELS:
        return document, [
            FieldError(
                "",
                "FieldValueNotSupported",
                f"not a Driftline resource: {document.get('apiVersion')}/{kind}",
            )
        ]
    return prepare_custom_object(schema_for(kind), document, old, observer)


def rejection(document: dict[str, Any], errors: list[FieldError]) -> str:
    name = document.get("metadata", {}).get("name", "")
    return invalid_message(str(document.get("kind")), GROUP, name, errors)


class _KubernetesYamlLoader(yaml.SafeLoader):
    """YAML as kubectl reads it: an unquoted 2026-11-20 stays a string, not a date."""


_KubernetesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as handle:
        for document in yaml.load_all(handle, Loader=_KubernetesYamlLoader):
            if document:
                yield document


def parse(document: dict[str, Any]) -> ResourceModel:
    """A validated manifest as its pydantic model."""
    return MODELS[document["kind"]].model_validate(document)
