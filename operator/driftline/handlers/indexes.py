"""In-memory indexes kopf keeps from its watches, so handlers need not list.

They are rebuilt from the cluster when the operator starts (kopf fills them before any
handler runs), so no decision depends on memory that a restart would lose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from driftline.api.common import GROUP, VERSION
from driftline.handlers.runtime import plain
from driftline.render import labels as lbl

OWNED = {lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY}
# (apiVersion, kind) of the children the operator may have to remove when the spec changes.
PRUNABLE = (
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("apps/v1", "Deployment"),
)


def controller_owner(metadata: Mapping[str, Any], kind: str) -> str | None:
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller") and reference.get("kind") == kind:
            return str(reference.get("name"))
    return None


def _owned_key(body: Mapping[str, Any], namespace: str | None) -> dict[Any, Any]:
    owner = controller_owner(body.get("metadata", {}), "ModelDeployment")
    if owner is None:
        return {}
    metadata = body.get("metadata", {})
    return {(namespace, owner): (body.get("apiVersion"), body.get("kind"), metadata.get("name"))}


@kopf.index("apps", "v1", "deployments", labels=OWNED)
def owned_deployments(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, ModelDeployment) -> the plain bodies of its track Deployments."""
    owner = controller_owner(body.get("metadata", {}), "ModelDeployment")
    return {(namespace, owner): plain(body)} if owner else {}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
def owned_hpas(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return _owned_key(body, namespace)


@kopf.index("", "v1", "serviceaccounts", labels=OWNED)
def owned_serviceaccounts(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return _owned_key(body, namespace)


@kopf.index("rbac.authorization.k8s.io", "v1", "roles", labels=OWNED)
def owned_roles(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return _owned_key(body, namespace)


@kopf.index("rbac.authorization.k8s.io", "v1", "rolebindings", labels=OWNED)
def owned_rolebindings(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return _owned_key(body, namespace)


@kopf.index(GROUP, VERSION, "driftpolicies")
def policies_by_target(
    body: kopf.Body, spec: kopf.Spec, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, ModelDeployment) -> the plain bodies of DriftPolicies targeting it."""
    target = (spec.get("targetRef") or {}).get("name")
    return {(namespace, target): plain(body)} if target else {}


@kopf.index(GROUP, VERSION, "modelversions")
def model_versions(body: kopf.Body, name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, name) -> the plain body: spares a GET per reconcile."""
    return {(namespace, name): plain(body)}


@kopf.index(GROUP, VERSION, "modeldeployments")
def model_deployments(
    body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, name) -> the plain body; status writes from it carry its resourceVersion,
    so a stale copy costs a conflict and a fresh read, never a lost update."""
    return {(namespace, name): plain(body)}


def indexed_body(
    index_views: Mapping[str, Any], index_name: str, key: tuple[str, str]
) -> dict[str, Any] | None:
    index = index_views.get(index_name)
    if index is None:
        return None
    found = list(index.get(key, []))
    return found[0] if found else None


@kopf.index(GROUP, VERSION, "modeldeployments")
def deployments_by_version(
    name: str, spec: kopf.Spec, status: kopf.Status, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, ModelVersion) -> ModelDeployments that want or serve it."""
    summary = {
        "name": name,
        "target": spec.get("modelVersion"),
        "stable": status.get("stableVersion"),
    }
    keys = {spec.get("modelVersion"), status.get("stableVersion"), status.get("canaryVersion")}
    return {(namespace, version): summary for version in keys if version}


def owned_children(indexes: Mapping[str, Any], key: tuple[str, str]) -> set[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every child the operator created for one ModelDeployment."""
    children: set[tuple[str, str, str]] = set()
    for index_name in ("owned_hpas", "owned_serviceaccounts", "owned_roles", "owned_rolebindings"):
        index = indexes.get(index_name)
        if index is not None:
            children.update(tuple(v) for v in index.get(key, []))
    deployments = indexes.get("owned_deployments")
    if deployments is not None:
        for body in deployments.get(key, []):
            children.add(("apps/v1", "Deployment", body["metadata"]["name"]))
    return children
