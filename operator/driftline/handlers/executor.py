"""Carry out a Decision: the one place where reconcile decisions become API calls.

Order: finalizers that must be added, objects (created, or applied when the operator
already owns them), pruning, the status (with the resourceVersion it was computed from),
finalizers that must go, Events. When a step fails, the status says why (Reconciled
False) without claiming the new generation, and the error goes back to the work queue,
which tries again with backoff.
"""

from __future__ import annotations

import logging
from typing import Any

from driftline.api.common import ApiModel
from driftline.handlers.kube import AlreadyExists, Conflict, KubeApi, KubeError
from driftline.handlers.retry import reason_for
from driftline.reconcile.decision import Decision, ObjectRef, status_after_failure
from driftline.reconcile.merge_patch import merge_patch
from driftline.reconcile.transitions import EventSpec

logger = logging.getLogger(__name__)


class NameTaken(Exception):
    """A child's name belongs to an object the operator does not own: never adopted."""

    def __init__(self, ref: ObjectRef, owner: str) -> None:
        super().__init__(
            f"{ref} already exists and is {owner}; Driftline never adopts an object it did "
            "not create: rename or delete that object"
        )
        self.ref = ref


def _owner_description(obj: dict[str, Any]) -> str:
    for reference in obj.get("metadata", {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return f"controlled by {reference.get('kind')} {reference.get('name')}"
    return "not controlled by this resource"


def _create_or_apply(kube: KubeApi, obj: dict[str, Any], known: bool, owner_uid: str) -> None:
    if known:
        kube.apply(obj)
        return
    try:
        kube.create(obj)
    except AlreadyExists as exists:
        ref = ObjectRef.of(obj)
        live = kube.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if live is None:
            raise exists  # deleted in between: the retry creates it
        controller = [
            r for r in live.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")
        ]
        if not controller or controller[0].get("uid") != owner_uid:
            raise NameTaken(ref, _owner_description(live)) from exists
        kube.apply(obj)  # ours, created by an earlier reconcile the index has not seen yet


def _create_once(kube: KubeApi, obj: dict[str, Any]) -> None:
    try:
        kube.create(obj)
    except AlreadyExists as exists:
        ref = ObjectRef.of(obj)
        live = kube.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if live is None:
            raise exists  # deleted in between: the retry creates it
        wanted = obj.get("metadata", {}).get("labels") or {}
        labels = live.get("metadata", {}).get("labels") or {}
        if any(labels.get(key) != value for key, value in wanted.items()):
            raise NameTaken(ref, "not the one this decision makes (its labels differ)") from exists


def _post_events(kube: KubeApi, decision: Decision[Any], events: Any, now: str) -> None:
    for event in events:
        assert isinstance(event, EventSpec)
        try:
            kube.post_event(decision.involved, event.type, event.reason, event.message, now)
        except KubeError as error:
            # An Event is a notice, not state: status already says the same.
            logger.warning("posting Event %s failed: %s", event.reason, error)


def _write_status(
    kube: KubeApi,
    decision: Decision[Any],
    old: ApiModel | None,
    new: ApiModel,
    resource_version: str | None,
) -> str | None:
    """Write the change from `old` to `new`; the resourceVersion afterwards, or None when
    there was nothing to write."""
    before = old.wire() if old is not None else {}
    after = new.wire()
    patch = merge_patch(before, after)
    if not patch:
        return None
    target = decision.target
    updated = kube.patch_status(
        target.api_version,
        target.kind,
        target.namespace,
        target.name,
        patch,
        resource_version=resource_version,
    )
    return str((updated or {}).get("metadata", {}).get("resourceVersion") or "") or None


def _set_finalizers(
    kube: KubeApi,
    decision: Decision[Any],
    finalizers: tuple[str, ...],
    resource_version: str | None,
) -> str | None:
    """Patch the finalizers; the resourceVersion the resource has afterwards."""
    target = decision.target
    updated = kube.patch_metadata(
        target.api_version,
        target.kind,
        target.namespace,
        target.name,
        {"finalizers": list(finalizers)},
        resource_version=resource_version,
    )
    return (updated or {}).get("metadata", {}).get("resourceVersion")


def execute(kube: KubeApi, decision: Decision[Any], empty_status: ApiModel, now: str) -> str | None:
    """Carry `decision` out; raise what failed after recording it in status. Returns the
    resource's resourceVersion after the operator's last write to it (None: no write)."""
    owner_uid = str(decision.involved.get("metadata", {}).get("uid", ""))
    finalizers = decision.finalizers
    current = decision.current_finalizers
    adding = finalizers is not None and not set(finalizers) <= set(current)
    removing = finalizers is not None and not adding and tuple(finalizers) != tuple(current)
    # Our own finalizer patch is the only change since the read the status was computed
    # from, so the status write may carry the version that patch produced.
    resource_version = decision.resource_version
    try:
        if adding and finalizers is not None:
            resource_version = _set_finalizers(
                kube, decision, tuple(dict.fromkeys([*current, *finalizers])), resource_version
            )
        for obj in decision.apply:
            _create_or_apply(kube, obj, ObjectRef.of(obj) in decision.known, owner_uid)
        for obj in decision.create_once:
            _create_once(kube, obj)
        for child in decision.prune:
            ref = child.ref
            kube.delete(ref.api_version, ref.kind, ref.namespace, ref.name, uid=child.uid)
    except (KubeError, NameTaken) as error:
        if isinstance(error, Conflict) or decision.status is None:
            raise
        reason = "NameTaken" if isinstance(error, NameTaken) else reason_for(error)
        failed, events = status_after_failure(
            decision.old_status,
            empty_status,
            reason,
            str(error),
            generation=decision.generation,
            now=now,
        )
        try:
            if _write_status(kube, decision, decision.old_status, failed, resource_version):
                _post_events(kube, decision, events, now)
        except KubeError as write_error:
            logger.warning("recording the failure in status failed too: %s", write_error)
        raise
    written = resource_version if resource_version != decision.resource_version else None
    if decision.status is not None:
        written = (
            _write_status(kube, decision, decision.old_status, decision.status, resource_version)
            or written
        )
    if removing and finalizers is not None:
        written = _set_finalizers(kube, decision, finalizers, written or resource_version)
    _post_events(kube, decision, decision.events, now)
    return written
