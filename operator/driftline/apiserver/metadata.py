"""Object metadata as kube-apiserver sets it (pure functions)."""

from __future__ import annotations

import datetime
import re
import secrets
from typing import Any

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The alphabet Kubernetes uses for generateName suffixes (no vowels, no confusable digits).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Server-owned metadata that clients cannot set or change through writes.
SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


# Kinds whose names need only be valid URL path segments (upstream ValidateRBACName), so
# that `system:discovery` and `system:serviceaccount:...`-style names are possible.
PATH_SEGMENT_NAMED = frozenset(
    ("rbac.authorization.k8s.io", plural)
    for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
)


def path_segment_name_problem(name: str) -> str | None:
    if name in (".", ".."):
        return f"may not be '{name}'"
    for forbidden in ("/", "%"):
        if forbidden in name:
            return f"may not contain '{forbidden}'"
    return None


def name_problem(name: str, storage: tuple[str, str] | None = None) -> str | None:
    """Why a name is not valid for its kind (a DNS subdomain for most), in the API server's
    words, or None."""
    if storage in PATH_SEGMENT_NAMED:
        return path_segment_name_problem(name)
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not _NAME.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
            "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
            "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return None


def desired_state(obj: dict[str, Any]) -> dict[str, Any]:
    """What generation tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def next_generation(old: dict[str, Any], new: dict[str, Any]) -> int:
    generation = int(old["metadata"].get("generation") or 1)
    return generation + 1 if desired_state(old) != desired_state(new) else generation


def keep_server_metadata(old: dict[str, Any], new_metadata: dict[str, Any]) -> dict[str, Any]:
    """Client-sent metadata with the server-owned fields taken from the stored object."""
    result = {
        k: v for k, v in new_metadata.items() if k not in SERVER_METADATA and k != "managedFields"
    }
    for key in (*SERVER_METADATA, "managedFields"):
        if key in old["metadata"]:
            result[key] = old["metadata"][key]
    result["name"] = old["metadata"]["name"]
    if "namespace" in old["metadata"]:
        result["namespace"] = old["metadata"]["namespace"]
    else:
        result.pop("namespace", None)
    return result
