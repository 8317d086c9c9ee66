"""In-memory indexes kopf keeps from its watches, so reconciles need not list.

They are rebuilt from the cluster when the operator starts (kopf fills them before any
handler runs), so no decision depends on memory that a restart would lose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from driftline.api.common import GROUP, VERSION
from driftline.reconcile.decision import child_state
from driftline.render import labels as lbl

OWNED = {lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY}
MODEL_DEPLOYMENT = "ModelDeployment"

# (group, version, plural) of every kind the operator makes for a ModelDeployment.
CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("", "v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    # Watched only where the Gateway API is installed (kopf watches what the cluster serves).
    ("gateway.networking.k8s.io", "v1", "httproutes"),
)
CHILD_INDEXES = tuple(f"children_{plural}" for _, _, plural in CHILD_RESOURCES)


def plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (kopf hands out read-only views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def controller_owner(metadata: Mapping[str, Any], kind: str) -> str | None:
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("controller") and reference.get("kind") == kind:
            return str(reference.get("name"))
    return None


def _child(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, ModelDeployment) -> what the cluster shows of each child object."""
    owner = controller_owner(body.get("metadata", {}), MODEL_DEPLOYMENT)
    if owner is None:
        return {}
    return {(namespace, owner): child_state(plain(body), MODEL_DEPLOYMENT)}


for _group, _version, _plural in CHILD_RESOURCES:
    kopf.index(_group, _version, _plural, labels=OWNED, id=f"children_{_plural}")(_child)


@kopf.index("apps", "v1", "deployments", labels=OWNED)
def owned_deployments(body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, ModelDeployment) -> the plain bodies of its track Deployments."""
    owner = controller_owner(body.get("metadata", {}), MODEL_DEPLOYMENT)
    return {(namespace, owner): plain(body)} if owner else {}


@kopf.index(GROUP, VERSION, "driftpolicies")
def policies_by_target(
    body: kopf.Body, spec: kopf.Spec, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, ModelDeployment) -> the plain bodies of DriftPolicies targeting it."""
    target = (spec.get("targetRef") or {}).get("name")
    return {(namespace, target): plain(body)} if target else {}


@kopf.index(GROUP, VERSION, "driftpolicies")
def drift_policies(body: kopf.Body, name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index(GROUP, VERSION, "modelversions")
def model_versions(body: kopf.Body, name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, name) -> the plain body: spares a GET per reconcile."""
    return {(namespace, name): plain(body)}


@kopf.index(GROUP, VERSION, "modelversions")
def versions_by_model(
    body: kopf.Body, spec: kopf.Spec, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, model) -> the plain bodies of its ModelVersions (for versionSelector)."""
    model = spec.get("model")
    return {(namespace, model): plain(body)} if model else {}


@kopf.index(GROUP, VERSION, "modeldeployments")
def followers_of_model(
    name: str, spec: kopf.Spec, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, model) -> names of ModelDeployments whose versionSelector follows it."""
    model = (spec.get("versionSelector") or {}).get("model")
    return {(namespace, model): name} if model else {}


@kopf.index(GROUP, VERSION, "modeldeployments")
def model_deployments(
    body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, name) -> the plain body; status writes from it carry its resourceVersion,
    so a stale copy costs a conflict and a fresh read, never a lost update."""
    return {(namespace, name): plain(body)}


@kopf.index(GROUP, VERSION, "modeldeployments")
def deployments_in_namespace(name: str, namespace: str | None, **_: Any) -> dict[Any, Any]:
    """(namespace, "") -> names of its ModelDeployments (a DriftPolicy change wakes them)."""
    return {(namespace, ""): name}


def referenced_versions(spec: Mapping[str, Any], status: Mapping[str, Any]) -> set[str]:
    """ModelVersions a ModelDeployment wants or serves."""
    names = {spec.get("modelVersion"), status.get("stableVersion"), status.get("canaryVersion")}
    return {n for n in names if n}


@kopf.index(GROUP, VERSION, "modeldeployments")
def deployments_by_version(
    name: str, spec: kopf.Spec, status: kopf.Status, namespace: str | None, **_: Any
) -> dict[Any, Any]:
    """(namespace, ModelVersion) -> names of ModelDeployments that want or serve it."""
    return {(namespace, version): name for version in referenced_versions(spec, status)}
