"""Names, labels and owner references shared by every rendered object."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

MANAGED_BY = "driftline"
PART_OF = "driftline"
FIELD_MANAGER = "driftline"

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
VERSION = "app.kubernetes.io/version"
COMPONENT = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
TRACK = "driftline.io/track"
TRAFFIC = "driftline.io/traffic"
MODEL_VERSION = "driftline.io/model-version"

COMPONENT_SERVER = "model-server"
COMPONENT_EVALUATOR = "drift-evaluator"
COMPONENT_VERIFICATION = "verification"

TRACKS = ("stable", "canary", "preview")
# Tracks whose pods the Service sends traffic to; a blue-green preview gets none until the switch.
TRAFFIC_TRACKS = frozenset({"stable", "canary"})

_MAX_NAME = 63


def bounded_name(*parts: str, limit: int = _MAX_NAME) -> str:
    """Join parts with '-'; when too long, cut and add a short hash so names stay unique."""
    name = "-".join(parts)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def label_value(value: str) -> str:
    """A label value is at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in value)[:63]
    return cleaned.strip("._-")


def track_deployment_name(deployment_name: str, track: str) -> str:
    return bounded_name(deployment_name, track)


def evaluator_account_name(deployment_name: str) -> str:
    return bounded_name(deployment_name, "drift-evaluator")


def verification_job_name(model_version_name: str) -> str:
    return bounded_name(model_version_name, "verify")


def standard_labels(
    *,
    name: str,
    instance: str,
    component: str,
    version: str | None = None,
) -> dict[str, str]:
    labels = {
        NAME: label_value(name),
        INSTANCE: label_value(instance),
        COMPONENT: component,
        PART_OF_LABEL: PART_OF,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if version:
        labels[VERSION] = label_value(version)
    return labels


def server_selector(deployment_name: str) -> dict[str, str]:
    """Selects every serving pod of one ModelDeployment, whatever its track."""
    return {INSTANCE: label_value(deployment_name), COMPONENT: COMPONENT_SERVER}


def track_selector(deployment_name: str, track: str) -> dict[str, str]:
    """Immutable selector of one track's Deployment: never includes the version."""
    return {**server_selector(deployment_name), TRACK: track}


def selector_string(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to a custom object, so garbage collection follows it."""
    metadata = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_metadata(
    name: str,
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": dict(labels),
        "ownerReferences": [owner_reference(owner)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata
