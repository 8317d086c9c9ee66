"""A PodDisruptionBudget over all serving pods of a ModelDeployment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.render import labels as lbl


def render_pdb(owner: Mapping[str, Any], *, model_name: str) -> dict[str, Any]:
    """maxUnavailable 1 rather than minAvailable: a one-replica deployment must not block
    node drains forever, and a larger one loses at most one pod at a time."""
    deployment_name = owner["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": lbl.object_metadata(
            lbl.pdb_name(deployment_name),
            owner,
            lbl.standard_labels(
                name=model_name, instance=deployment_name, component=lbl.COMPONENT_SERVER
            ),
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": lbl.server_selector(deployment_name)},
        },
    }
