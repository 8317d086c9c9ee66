"""Discovery documents for the registry's resources (pure): /apis, /apis/<group>, /apis/<group>/<version>."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from driftline.apiserver.resources import VERBS, ResourceType

_SUBRESOURCE_VERBS = ["get", "patch", "update"]


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order: GA before beta before alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)  # non-conforming versions sort last, alphabetically
    major, stage, minor = match.groups()
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -int(major), -int(minor or 0), version)


def group_versions(resources: Iterable[ResourceType]) -> dict[str, list[str]]:
    """Served versions per named API group, the preferred (highest priority) one first."""
    groups: dict[str, set[str]] = {}
    for resource in resources:
        if resource.group:
            groups.setdefault(resource.group, set()).add(resource.version)
    return {
        group: sorted(versions, key=version_priority) for group, versions in sorted(groups.items())
    }


def group_document(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def group_list(resources: Iterable[ResourceType]) -> dict[str, Any]:
    groups = [group_document(g, v) for g, v in group_versions(resources).items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(
    resources: Iterable[ResourceType], group: str, version: str
) -> dict[str, Any] | None:
    """The APIResourceList of one group version, subresources included; None if not served."""
    served = sorted(
        (r for r in resources if r.group == group and r.version == version), key=lambda r: r.plural
    )
    if not served:
        return None
    entries: list[dict[str, Any]] = []
    for r in served:
        entries.append(
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(VERBS),
                "shortNames": list(r.short_names),
                "categories": list(r.categories),
            }
        )
        if r.status:
            entries.append(
                {
                    "name": f"{r.plural}/status",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": _SUBRESOURCE_VERBS,
                }
            )
        if r.scale is not None:
            entries.append(
                {
                    "name": f"{r.plural}/scale",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": _SUBRESOURCE_VERBS,
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": served[0].api_version,
        "resources": entries,
    }
