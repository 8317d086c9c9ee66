"""Manual rollout requests, the client's half of the protocol (pure; no I/O).

The command line never edits a user's spec. It writes one annotation on the
ModelDeployment, `driftline.io/rollout-request`, holding a JSON object
`{"id", "action", "requestedAt"}`; the operator acts on a request whose id differs from
`status.handledRequest` and records that id in the same status write, so each request is
acted on exactly once whatever the reconciles or restarts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The protocol's names are the operator's own (one definition for both halves).
from driftline.rollout.types import REQUEST_ACTIONS as ACTIONS
from driftline.rollout.types import REQUEST_ANNOTATION
from driftline.rollout.types import RequestAction as Action

__all__ = ["ACTIONS", "REQUEST_ANNOTATION", "Action"]


@dataclass(frozen=True)
class RolloutRequest:
    id: str
    action: Action
    requested_at: datetime

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "action": self.action,
                "requestedAt": rfc3339(self.requested_at),
            },
            separators=(",", ":"),
        )


def rfc3339(moment: datetime) -> str:
    """UTC, whole seconds, with a Z: the form Kubernetes writes its own timestamps in."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_request(action: Action, now: datetime, request_id: str | None = None) -> RolloutRequest:
    if action not in ACTIONS:
        raise ValueError(f"unknown rollout action {action!r}; known: {', '.join(ACTIONS)}")
    return RolloutRequest(id=request_id or uuid.uuid4().hex, action=action, requested_at=now)


def annotation_patch(request: RolloutRequest) -> dict[str, Any]:
    """The `metadata` of a JSON merge patch that writes the request and touches nothing else."""
    return {"annotations": {REQUEST_ANNOTATION: request.to_json()}}


def pending_request(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request on the object that the operator has not acted on yet, if any (as written:
    a malformed annotation counts as none, since the operator cannot act on it either)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        written = json.loads(annotations.get(REQUEST_ANNOTATION) or "null")
    except ValueError:
        return None
    if not isinstance(written, dict) or not written.get("id"):
        return None
    return None if written["id"] == handled_request(obj) else written


def handled_request(obj: Mapping[str, Any]) -> str | None:
    handled = (obj.get("status") or {}).get("handledRequest")
    return str(handled) if handled else None


def rollout_in_progress(status: Mapping[str, Any]) -> bool:
    """A canary or a blue-green preview is running beside the stable version."""
    return bool(status.get("canaryVersion") or status.get("previewVersion"))


def refusal(action: Action, obj: Mapping[str, Any]) -> str | None:
    """Why the request cannot make sense in the state the status shows; None when it can.

    Checked before writing anything, so an obviously pointless request never reaches
    the operator (which stays the judge of everything else)."""
    status = obj.get("status") or {}
    where = (
        f"{(obj.get('metadata') or {}).get('namespace')}/{(obj.get('metadata') or {}).get('name')}"
    )
    if action in ("promote", "promote-full") and not rollout_in_progress(status):
        stable = status.get("stableVersion")
        serving = f" (it serves {stable})" if stable else ""
        return (
            f"nothing to promote: ModelDeployment {where} has no rollout in progress{serving}; "
            "status shows no canaryVersion or previewVersion"
        )
    if action == "retry" and not status.get("abortedVersion"):
        return (
            f"nothing to retry: ModelDeployment {where} shows no aborted rollout "
            "(status.abortedVersion is empty)"
        )
    return None
