"""`driftline validate`: check manifests offline, with the API server's messages."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from driftline.api.common import API_VERSION
from driftline.api.manifests import (
    MODELS,
    check_manifest,
    load_documents,
    parse,
    rejection,
    schema_for,
)
from driftline.api.validation import FieldError, unknown_fields


class ManifestFileError(Exception):
    """A file that holds no Kubernetes objects to check."""


def _field_schema(kind: str) -> dict[str, Any]:
    """The kind's schema with the standard fields declared, as the API server checks fields."""
    from driftline.apiserver.builtin_schemas import builtin_definitions

    schema = dict(schema_for(kind))
    properties = dict(schema.get("properties") or {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    object_meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    if object_meta in builtin_definitions():
        properties["metadata"] = {"$ref": f"#/definitions/{object_meta}"}
    schema["properties"] = properties
    return schema


def undeclared_fields(document: dict[str, Any]) -> list[FieldError]:
    """Fields the API server would refuse under kubectl's default (strict) field validation."""
    from driftline.apiserver.builtin_schemas import builtin_definitions

    found = unknown_fields(_field_schema(str(document["kind"])), document, builtin_definitions())
    return [
        FieldError(path, "FieldValueNotSupported", "field not declared in schema") for path in found
    ]


def objects_in(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a manifest file; ManifestFileError if it has none or
    holds something else than Kubernetes objects."""
    if path.is_dir():
        raise ManifestFileError("is a directory; name the manifest files")
    count = 0
    try:
        for index, document in enumerate(load_documents(path), start=1):
            if not isinstance(document, dict):
                raise ManifestFileError(
                    f"document {index} is a YAML {_yaml_type(document)}, not a Kubernetes object "
                    "(a mapping with apiVersion, kind and metadata)"
                )
            count += 1
            yield document
    except yaml.YAMLError as error:
        raise ManifestFileError(f"not valid YAML: {_one_line(error)}") from error
    except UnicodeDecodeError as error:
        raise ManifestFileError(f"not a text file: {error.reason} at byte {error.start}") from error
    except OSError as error:
        raise ManifestFileError(error.strerror or str(error)) from error
    if count == 0:
        raise ManifestFileError("holds no Kubernetes objects (the file is empty)")


def _yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _one_line(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Validate Driftline manifests against the generated CRDs (schema, CEL rules, and no
    fields the schema does not declare)."""
    failed = 0
    for path in files:
        try:
            for document in objects_in(path):
                meta = document.get("metadata")
                name = meta.get("name", "?") if isinstance(meta, dict) else "?"
                label = f"{path}: {document.get('kind')}/{name}"
                if document.get("apiVersion") != API_VERSION or document.get("kind") not in MODELS:
                    # Namespaces and other kinds that share the file are the API's to check.
                    click.echo(f"skipped {label}: not a Driftline resource")
                    continue
                stored, errors = check_manifest(document)
                errors = undeclared_fields(document) + errors
                if errors:
                    failed += 1
                    click.echo(f"INVALID {label}: {rejection(document, errors)}")
                    continue
                try:
                    parse(stored)
                except ValidationError as error:
                    failed += 1
                    click.echo(f"INVALID {label}: {error}")
                    continue
                click.echo(f"valid   {label}")
        except ManifestFileError as error:
            failed += 1
            click.echo(f"INVALID {path}: {error}")
    sys.exit(1 if failed else 0)
