"""Garbage collection by ownerReferences, carried out on the cluster.

Kubernetes runs this as a controller; here it runs synchronously after each deletion,
which is one of the orders a real garbage collector may produce. The decisions themselves
are pure functions in `gc.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driftline.apiserver import gc
from driftline.apiserver.resources import ResourceType
from driftline.apiserver.store import Obj

if TYPE_CHECKING:
    from driftline.apiserver.cluster import Cluster


class GarbageCollector:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def after_write(self, resource: ResourceType, obj: Obj) -> None:
        """An object whose owners are all gone is garbage, even when it is just being written."""
        if gc.owner_uids(obj) and not obj["metadata"].get("deletionTimestamp"):
            decision, _ = gc.after_owner_gone(obj, self.cluster.uid_exists)
            if decision == "delete":
                meta = obj["metadata"]
                self.cluster.delete(resource, meta.get("namespace"), meta["name"])

    def after_removal(self, removed: Obj) -> None:
        """Collect what the removed object owned; free owners it held in foreground deletion."""
        self._collect_dependents_of(removed["metadata"]["uid"])
        self._release_foreground_owners(removed)

    def _collect_dependents_of(self, owner_uid: str) -> None:
        for key in self.cluster.store.dependents(owner_uid):
            dependent = self.cluster.store.get_key(key)
            resource = self.cluster.type_of(key)
            if dependent is None or resource is None:
                continue
            decision, remaining = gc.after_owner_gone(dependent, self.cluster.uid_exists)
            if decision == "delete":
                self.cluster.delete(resource, key[2] or None, key[3])
            elif decision == "drop-references":
                self._set_owner_references(resource, dependent, remaining or [])

    def delete_dependents(self, owner_uid: str, propagation: str) -> None:
        for key in self.cluster.store.dependents(owner_uid):
            resource = self.cluster.type_of(key)
            dependent = self.cluster.store.get_key(key)
            if (
                resource is not None
                and dependent is not None
                and not dependent["metadata"].get("deletionTimestamp")
            ):
                self.cluster.delete(resource, key[2] or None, key[3], gc.DeleteOptions(propagation))

    def orphan_dependents(self, owner_uid: str) -> None:
        for key in self.cluster.store.dependents(owner_uid):
            resource = self.cluster.type_of(key)
            dependent = self.cluster.store.get_key(key)
            if resource is not None and dependent is not None:
                self._set_owner_references(
                    resource, dependent, gc.without_reference_to(dependent, owner_uid)
                )

    def _set_owner_references(
        self, resource: ResourceType, dependent: Obj, references: list[dict[str, Any]]
    ) -> None:
        meta = {
            k: v
            for k, v in dependent["metadata"].items()
            if k not in ("ownerReferences", "resourceVersion")
        }
        if references:
            meta["ownerReferences"] = references
        self.cluster.store.put(resource.storage_key, {**dependent, "metadata": meta})

    def _release_foreground_owners(self, removed: Obj) -> None:
        """Owners waiting in foreground deletion may be free once this dependent is gone."""
        for uid in gc.owner_uids(removed):
            key = self.cluster.key_of_uid(uid)
            if key is None:
                continue
            owner = self.cluster.store.get_key(key)
            if owner is not None and gc.FOREGROUND_FINALIZER in (
                owner["metadata"].get("finalizers") or []
            ):
                self.release_foreground((key[0], key[1]), owner)

    def release_foreground(self, storage: tuple[str, str], owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        for key in self.cluster.store.dependents(uid):
            dependent = self.cluster.store.get_key(key)
            if dependent is not None and gc.blocks_foreground(dependent, uid):
                return
        resource = next(r for r in self.cluster.registry if r.storage_key == storage)
        finalizers = [
            f for f in owner["metadata"].get("finalizers") or [] if f != gc.FOREGROUND_FINALIZER
        ]
        meta = {
            k: v for k, v in owner["metadata"].items() if k not in ("finalizers", "resourceVersion")
        }
        if finalizers:
            self.cluster.store.put(
                storage, {**owner, "metadata": {**meta, "finalizers": finalizers}}
            )
        else:
            self.cluster.remove_now(resource, owner)
