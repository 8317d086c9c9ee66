"""An in-memory Kubernetes API behind the operator's KubeApi Protocol, for exercising the
handlers in-process: it keeps objects, resourceVersions, conflicts on stale writes,
AlreadyExists on creates, uid preconditions on deletes, and records every call."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from driftline.handlers.kube import KubeError
from driftline.reconcile.decision import child_state
from driftline.reconcile.merge_patch import merge_patch  # noqa: F401  (re-exported for tests)

Key = tuple[str, str, str, str]


def _apply_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _apply_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class MemoryKube:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.events: list[dict[str, Any]] = []
        # (verb, kind, name) -> the error that call raises, once per entry.
        self.failures: dict[tuple[str, str, str], KubeError] = {}
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)

    # -- helpers for tests --------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as if someone had created it (no call recorded)."""
        stored = copy.deepcopy(dict(obj))
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{next(self._uids)}")
        metadata.setdefault("generation", 1)
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[self._key_of(stored)] = stored
        return copy.deepcopy(stored)

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next(
            (
                copy.deepcopy(o)
                for (_, k, _, n), o in self.objects.items()
                if (k, n) == (kind, name)
            ),
            None,
        )

    def fail_next(self, verb: str, kind: str, name: str, error: KubeError) -> None:
        self.failures[(verb, kind, name)] = error

    # -- KubeApi ------------------------------------------------------------------------

    @staticmethod
    def _key_of(obj: Mapping[str, Any]) -> Key:
        metadata = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], metadata.get("namespace", ""), metadata["name"])

    def _call(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, f"{kind}/{name}"))
        error = self.failures.pop((verb, kind, name), None)
        if error is not None:
            raise error

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get", kind, name)
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self._call("list", kind, "")
        wanted = dict(part.split("=", 1) for part in (label_selector or "").split(",") if part)
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in self.objects.items()
            if (v, k, ns) == (api_version, kind, namespace)
            and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in wanted.items())
        ]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self._call("create", obj["kind"], obj["metadata"]["name"])
        if self._key_of(obj) in self.objects:
            raise KubeError.of(409, "AlreadyExists", "already exists", "create")
        return self.put(obj)

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self._call("apply", obj["kind"], obj["metadata"]["name"])
        key = self._key_of(obj)
        existing = self.objects.get(key)
        if existing is None:
            return self.put(obj)
        merged = copy.deepcopy(dict(obj))
        merged["metadata"] = {**existing["metadata"], **merged["metadata"]}
        merged["metadata"]["resourceVersion"] = str(next(self._versions))
        if "status" in existing:
            merged["status"] = existing["status"]
        self.objects[key] = merged
        return copy.deepcopy(merged)

    def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> bool:
        self._call("delete", kind, name)
        key = (api_version, kind, namespace, name)
        found = self.objects.get(key)
        if found is None or (uid and found["metadata"]["uid"] != uid):
            return False
        del self.objects[key]
        return True

    def _patch(
        self, key: Key, field: str, patch: Mapping[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        found = self.objects.get(key)
        if found is None:
            return None
        if resource_version and found["metadata"]["resourceVersion"] != resource_version:
            raise KubeError.of(409, "Conflict", "the object has been modified", "patch")
        _apply_merge(found.setdefault(field, {}), patch)
        found["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(found)

    def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        self._call("patch_status", kind, name)
        return self._patch((api_version, kind, namespace, name), "status", status, resource_version)

    def patch_metadata(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        metadata: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        self._call("patch_metadata", kind, name)
        return self._patch(
            (api_version, kind, namespace, name), "metadata", metadata, resource_version
        )

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        self._call("post_event", involved.get("kind", ""), involved["metadata"]["name"])
        self.events.append({"type": type_, "reason": reason, "message": message})

    # -- what kopf's indexes would hold ----------------------------------------------------

    def indexes(self) -> dict[str, dict[Any, list[Any]]]:
        """The indexes the operator's kopf handlers build, from the stored objects."""
        from driftline.handlers import indexes as idx

        built: dict[str, dict[Any, list[Any]]] = {}

        def add(index: str, key: Any, value: Any) -> None:
            built.setdefault(index, {}).setdefault(key, []).append(value)

        for (_, kind, namespace, name), obj in self.objects.items():
            metadata = obj["metadata"]
            owner = idx.controller_owner(metadata, "ModelDeployment")
            if owner and (metadata.get("labels") or {}).get("app.kubernetes.io/managed-by"):
                plural = {
                    "Deployment": "deployments",
                    "Service": "services",
                    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
                    "PodDisruptionBudget": "poddisruptionbudgets",
                    "ServiceAccount": "serviceaccounts",
                    "Role": "roles",
                    "RoleBinding": "rolebindings",
                    "HTTPRoute": "httproutes",
                }.get(kind)
                if plural:
                    add(
                        f"children_{plural}",
                        (namespace, owner),
                        child_state(obj, "ModelDeployment"),
                    )
                if kind == "Deployment":
                    add("owned_deployments", (namespace, owner), copy.deepcopy(obj))
            if kind == "ModelVersion":
                add("model_versions", (namespace, name), copy.deepcopy(obj))
                model = (obj.get("spec") or {}).get("model")
                if model:
                    add("versions_by_model", (namespace, model), copy.deepcopy(obj))
            if kind == "ModelDeployment":
                add("model_deployments", (namespace, name), copy.deepcopy(obj))
                add("deployments_in_namespace", (namespace, ""), name)
                followed = ((obj.get("spec") or {}).get("versionSelector") or {}).get("model")
                if followed:
                    add("followers_of_model", (namespace, followed), name)
                for version in idx.referenced_versions(
                    obj.get("spec") or {}, obj.get("status") or {}
                ):
                    add("deployments_by_version", (namespace, version), name)
            if kind == "DriftPolicy":
                add("drift_policies", (namespace, name), copy.deepcopy(obj))
                target = ((obj.get("spec") or {}).get("targetRef") or {}).get("name")
                if target:
                    add("policies_by_target", (namespace, target), copy.deepcopy(obj))
        return built
