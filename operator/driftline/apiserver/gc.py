"""Garbage collection by ownerReferences: what happens to a dependent when an owner goes.

Pure decisions; `Cluster` carries them out. Kubernetes deletes a dependent once none of its
owners exist, and only drops the dangling reference while another owner remains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from driftline.apiserver import errors

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")

Decision = (
    tuple[Literal["delete"], None]
    | tuple[Literal["drop-references"], list[dict[str, Any]]]
    | tuple[Literal["keep"], None]
)


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid")]


def after_owner_gone(dependent: dict[str, Any], owner_exists: Callable[[str], bool]) -> Decision:
    """Delete the dependent when no owner is left, else drop the references to missing owners."""
    references = dependent["metadata"].get("ownerReferences") or []
    remaining = [r for r in references if owner_exists(r.get("uid", ""))]
    if not remaining:
        return ("delete", None)
    if len(remaining) != len(references):
        return ("drop-references", remaining)
    return ("keep", None)


def without_reference_to(dependent: dict[str, Any], owner_uid: str) -> list[dict[str, Any]]:
    """The ownerReferences left after orphaning the dependent from one owner."""
    return [
        r for r in dependent["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid
    ]


def blocks_foreground(dependent: dict[str, Any], owner_uid: str) -> bool:
    """Whether a dependent still holds back its owner's foreground deletion."""
    return any(
        r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
        for r in dependent["metadata"].get("ownerReferences") or []
    )


@dataclass(frozen=True)
class DeleteOptions:
    propagation: str = "Background"
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None

    @classmethod
    def parse(cls, body: Any, query_policy: str | None) -> DeleteOptions:
        body = body if isinstance(body, dict) else {}
        policy = query_policy or body.get("propagationPolicy") or "Background"
        if policy not in PROPAGATION_POLICIES:
            raise errors.bad_request(f"propagationPolicy: Unsupported value: {policy!r}")
        preconditions = body.get("preconditions") or {}
        return cls(policy, preconditions.get("uid"), preconditions.get("resourceVersion"))
