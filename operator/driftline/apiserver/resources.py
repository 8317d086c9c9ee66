"""The resource types the local API serves: the built-in ones and those CRDs register."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from driftline.apiserver.selectors import COMMON_SELECTABLE_FIELDS, EXTRA_SELECTABLE_FIELDS

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ScalePaths:
    """Where a scalable resource keeps its replicas (CRD `subresources.scale`)."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = None


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    scale: ScalePaths | None = None
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    custom: bool = False
    selectable_fields: tuple[str, ...] = ()
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`plural.group` as kube-apiserver names a resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_key(self) -> tuple[str, str]:
        # All versions of one resource share one storage.
        return (self.group, self.plural)

    @property
    def field_selectable(self) -> tuple[str, ...]:
        return (
            COMMON_SELECTABLE_FIELDS
            + EXTRA_SELECTABLE_FIELDS.get(self.kind, ())
            + self.selectable_fields
        )


def _core(plural: str, kind: str, namespaced: bool = True, **extra: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, singular=kind.lower(), **extra)


def _grouped(group: str, version: str, plural: str, kind: str, **extra: Any) -> ResourceType:
    extra.setdefault("namespaced", True)
    return ResourceType(group, version, plural, kind, singular=kind.lower(), **extra)


BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", namespaced=False, short_names=("ns",), status=True),
    _core("pods", "Pod", short_names=("po",), categories=("all",), status=True),
    _core("services", "Service", short_names=("svc",), categories=("all",), status=True),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core("events", "Event", short_names=("ev",)),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status=True),
    _core("nodes", "Node", namespaced=False, short_names=("no",), status=True),
    _grouped(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=("all",),
        status=True,
        scale=ScalePaths(),
    ),
    _grouped(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        categories=("all",),
        status=True,
        scale=ScalePaths(),
    ),
    _grouped("batch", "v1", "jobs", "Job", categories=("all",), status=True),
    _grouped(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        categories=("all",),
        status=True,
    ),
    _grouped(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        status=True,
    ),
    _grouped("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _grouped("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _grouped("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _grouped(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    _grouped("coordination.k8s.io", "v1", "leases", "Lease"),
    _grouped("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    _grouped(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        status=True,
    ),
    _grouped("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), status=True),
)


class CrdError(ValueError):
    """A CustomResourceDefinition this server cannot serve."""


def resources_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not group or not plural or not kind:
        raise CrdError("spec.group, spec.names.plural and spec.names.kind are required")
    expected_name = f"{plural}.{group}"
    if (crd.get("metadata") or {}).get("name") != expected_name:
        raise CrdError(
            f'metadata.name: Invalid value: must be spec.names.plural+"."+spec.group: {expected_name!r}'
        )
    scope = spec.get("scope", "Namespaced")
    if scope not in ("Namespaced", "Cluster"):
        raise CrdError(f"spec.scope: Unsupported value: {scope!r}")
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale = subresources.get("scale")
        result.append(
            ResourceType(
                group=group,
                version=version["name"],
                plural=plural,
                kind=kind,
                namespaced=scope == "Namespaced",
                singular=names.get("singular") or kind.lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in subresources,
                scale=ScalePaths(
                    scale.get("specReplicasPath", ".spec.replicas"),
                    scale.get("statusReplicasPath", ".status.replicas"),
                    scale.get("labelSelectorPath"),
                )
                if scale is not None
                else None,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                selectable_fields=tuple(
                    f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or []
                ),
            )
        )
    if not result:
        raise CrdError(
            "spec.versions: Invalid value: must have exactly one version marked as served"
        )
    return result


class Registry:
    """Resource types by (group, version, plural), changing as CRDs come and go."""

    def __init__(self, builtins: tuple[ResourceType, ...] = BUILTIN_RESOURCES) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        for resource in builtins:
            self.add(resource)

    def add(self, resource: ResourceType) -> None:
        self._types[(resource.group, resource.version, resource.plural)] = resource

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for resource in self._types.values():
            if resource.group == group and resource.version == version and resource.kind == kind:
                return resource
        return None

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        name = crd["metadata"]["name"]
        types = resources_from_crd(crd)
        self.unregister_crd(name)
        for resource in types:
            self.add(resource)
        self._crd_types[name] = types
        return types

    def unregister_crd(self, name: str) -> list[ResourceType]:
        types = self._crd_types.pop(name, [])
        for resource in types:
            self._types.pop((resource.group, resource.version, resource.plural), None)
        return types

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))
