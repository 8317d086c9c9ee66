"""The one shape of every reconcile: what was observed goes into a pure `decide`, and what
comes out is a Decision that one executor (driftline.handlers.executor) carries out.

A Decision is complete: the objects to apply and to prune, the resource's whole new status
(a typed model), its Events, its finalizers, and when to look again. Nothing else is
remembered between reconciles: the next one observes the cluster afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from driftline.api.common import ApiModel
from driftline.conditions import make_condition, set_conditions
from driftline.reconcile.transitions import EventSpec, condition_events

# The hash of what the operator last applied to a child, so an unchanged child costs no
# API call on the next reconcile (a hash of the rendered object, not of the live one).
APPLIED_HASH = "driftline.io/applied-hash"

StatusT = TypeVar("StatusT", bound=ApiModel)


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        metadata = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], metadata.get("namespace", ""), metadata["name"])

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ChildState:
    """What the cluster shows of one object the operator made for a parent."""

    ref: ObjectRef
    uid: str
    owner_uid: str | None
    applied_hash: str | None


@dataclass(frozen=True, slots=True)
class Decision(Generic[StatusT]):
    """Everything one reconcile wants done, in the order the executor does it."""

    target: ObjectRef
    # The resourceVersion the decision was computed from: the status write carries it,
    # so a decision made from a stale read is refused (409) and made again.
    resource_version: str | None
    old_status: StatusT | None
    status: StatusT | None
    # Objects to create or server-side apply, in order; `known` says which of them the
    # operator already owns (applied), the rest are created and never adopted.
    apply: tuple[dict[str, Any], ...] = ()
    known: frozenset[ObjectRef] = frozenset()
    # Objects created once and never owned (a retrained ModelVersion outlives the policy
    # that made it): one that exists already with every label of the rendered one is the
    # same object, made by an earlier reconcile; any other of that name is NameTaken.
    create_once: tuple[dict[str, Any], ...] = ()
    prune: tuple[ChildState, ...] = ()
    events: tuple[EventSpec, ...] = ()
    # The finalizers the resource should carry afterwards; None leaves them as they are.
    finalizers: tuple[str, ...] | None = None
    current_finalizers: tuple[str, ...] = ()
    requeue_after: float | None = None
    generation: int | None = None
    involved: Mapping[str, Any] = field(default_factory=dict)


def applied_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of a rendered object (its applied-hash annotation left out)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def with_applied_hash(obj: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The object annotated with the hash of itself, and that hash."""
    digest = applied_hash(obj)
    metadata = dict(obj["metadata"])
    metadata["annotations"] = {**(metadata.get("annotations") or {}), APPLIED_HASH: digest}
    return {**obj, "metadata": metadata}, digest


def child_state(obj: Mapping[str, Any], owner_kind: str) -> ChildState:
    """A ChildState from a live object (as a watch or index delivers it)."""
    metadata = obj.get("metadata", {})
    owner_uid = next(
        (
            str(ref.get("uid"))
            for ref in metadata.get("ownerReferences") or []
            if ref.get("controller") and ref.get("kind") == owner_kind
        ),
        None,
    )
    return ChildState(
        ObjectRef(
            obj.get("apiVersion", ""),
            obj.get("kind", ""),
            metadata.get("namespace", ""),
            metadata.get("name", ""),
        ),
        uid=str(metadata.get("uid", "")),
        owner_uid=owner_uid,
        applied_hash=(metadata.get("annotations") or {}).get(APPLIED_HASH),
    )


def status_after_failure(
    old: StatusT | None,
    empty: StatusT,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> tuple[StatusT, list[EventSpec]]:
    """The status to write when carrying out a decision failed: the old status with
    Reconciled False naming why. observedGeneration is left as it was, since this
    generation was not applied."""
    base = old if old is not None else empty
    wire = base.wire()
    old_conditions = list(wire.get("conditions") or [])
    failed = make_condition(
        "Reconciled", False, reason, message[:1000], observed_generation=generation, now=now
    )
    conditions = set_conditions(old_conditions, [failed])
    ready = make_condition(
        "Ready",
        False,
        reason,
        f"Reconciled: {message[:500]}",
        observed_generation=generation,
        now=now,
    )
    conditions = set_conditions(conditions, [ready])
    status = type(base).model_validate({**wire, "conditions": conditions})
    return status, condition_events(old_conditions, conditions)
