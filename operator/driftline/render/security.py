"""The restricted Pod Security Standard, as pod and container security contexts."""

from __future__ import annotations

from typing import Any

# A fixed non-root uid: runAsNonRoot alone fails on images whose USER is a name.
NON_ROOT_UID = 65532


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


ARTIFACT_VOLUME = "artifacts"
ARTIFACT_DIR = "/var/lib/driftline/artifacts"
TMP_VOLUME = "tmp"


def scratch_volumes() -> list[dict[str, Any]]:
    """The artifact download area and a writable /tmp: the root filesystem is read-only."""
    return [
        {"name": ARTIFACT_VOLUME, "emptyDir": {}},
        {"name": TMP_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]


def scratch_mounts() -> list[dict[str, Any]]:
    return [
        {"name": ARTIFACT_VOLUME, "mountPath": ARTIFACT_DIR},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]


def secret_env_from(secret_name: str | None) -> list[dict[str, Any]]:
    """Credentials come only from the named Secret, never from the spec."""
    if not secret_name:
        return []
    return [{"secretRef": {"name": secret_name}}]
