"""Names, labels and owner references shared by every rendered object."""

from __future__ import annotations

import hashlib
import re
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
_HASH_LENGTH = 10
# A transformed child name always holds this separator and a kept one never does, so a
# name made from one parent can never equal the untouched name of another.
_TRANSFORMED_MARK = "--"
# Label values may hold '_', which object names may not: a cut value can never equal
# the unchanged value of another parent's name.
_CUT_VALUE_MARK = "_"
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def name_digest(original: str) -> str:
    """A short, stable hash of the original name: what keeps transformed names apart."""
    return hashlib.sha256(original.encode()).hexdigest()[:_HASH_LENGTH]


def child_name(parent: str, suffix: str = "", *, dns_1035: bool = False) -> str:
    """The name of a parent's child object, unique per parent.

    `parent-suffix` when that is already a valid name (a DNS-1123 subdomain, or a
    DNS-1035 label for Services) of at most 63 characters without "--", so existing
    objects keep their names. Otherwise the parent's name is cleaned (dots to dashes and
    a letter first for DNS-1035) and cut, and "--" and a hash of the original name are
    added before the suffix: distinct parents never share a child name. A caller's
    suffixes must not end one another (stable, canary, preview), so that the end of a
    name tells which suffix it has.
    """
    wanted = f"{parent}-{suffix}" if suffix else parent
    grammar = _DNS_1035_LABEL if dns_1035 else _DNS_1123_SUBDOMAIN
    if len(wanted) <= _MAX_NAME and _TRANSFORMED_MARK not in wanted and grammar.match(wanted):
        return wanted
    cleaned = parent.lower()
    if dns_1035:
        cleaned = cleaned.replace(".", "-")
        if not cleaned[:1].isalpha():
            cleaned = f"md-{cleaned}"
    tail = f"{_TRANSFORMED_MARK}{name_digest(parent)}" + (f"-{suffix}" if suffix else "")
    head = cleaned[: _MAX_NAME - len(tail)].rstrip("-.")
    return head + tail


def label_value(value: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends.

    A valid value is kept as it is (selectors of existing Deployments are immutable);
    any other is cleaned, cut, and given "_" and a hash of the original, so two values
    that differ never map to one label value.
    """
    if len(value) <= _MAX_NAME and _LABEL_VALUE.match(value):
        return value
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in value)
    tail = f"{_CUT_VALUE_MARK}{name_digest(value)}"
    head = cleaned[: _MAX_NAME - len(tail)].strip("._-")
    return f"{head or 'v'}{tail}"


def track_deployment_name(deployment_name: str, track: str) -> str:
    return child_name(deployment_name, track)


def evaluator_account_name(deployment_name: str) -> str:
    return child_name(deployment_name, "drift-evaluator")


def pdb_name(deployment_name: str) -> str:
    return child_name(deployment_name)


def service_name(deployment_name: str) -> str:
    """A Service name must be a DNS-1035 label (no dots, a letter first), stricter than
    the ModelDeployment's own name."""
    return child_name(deployment_name, dns_1035=True)


def extra_service_name(deployment_name: str, role: str) -> str:
    """A Service of one ModelDeployment besides the one clients call (a blue-green preview,
    a track's backend for an HTTPRoute). Always in the transformed form (it carries "--"
    and the parent's hash), so it can equal neither another parent's main Service, whose
    name never holds "--", nor another parent's extra Service."""
    return child_name(deployment_name, f"-{role}", dns_1035=True)


def verification_job_name(model_version_name: str) -> str:
    return child_name(model_version_name, "verify")


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
