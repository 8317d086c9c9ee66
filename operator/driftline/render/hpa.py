"""An autoscaling/v2 HorizontalPodAutoscaler for a ModelDeployment.

It scales the ModelDeployment itself, through its scale subresource (spec.replicas, with
the pods of every track selected by status.selector), and the operator splits that total
between the tracks of a rollout; an HPA on one track's Deployment could not follow a
canary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.api.modeldeployment import Autoscaling
from driftline.render import labels as lbl

# Served to the HPA by a metrics adapter (for example prometheus-adapter) as a Pods metric.
INFLIGHT_METRIC = "driftline_in_flight_requests"  # as driftline-serve exports it


def hpa_metrics(autoscaling: Autoscaling) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    if autoscaling.target_cpu_utilization is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": autoscaling.target_cpu_utilization,
                    },
                },
            }
        )
    if autoscaling.target_inflight_requests is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": INFLIGHT_METRIC},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": str(autoscaling.target_inflight_requests),
                    },
                },
            }
        )
    if not metrics:
        raise ValueError("autoscaling needs targetCPUUtilization, targetInflightRequests or both")
    return metrics


def render_hpa(
    owner: Mapping[str, Any], autoscaling: Autoscaling, *, model_name: str
) -> dict[str, Any]:
    deployment_name = owner["metadata"]["name"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": lbl.object_metadata(
            lbl.child_name(deployment_name),
            owner,
            lbl.standard_labels(
                name=model_name, instance=deployment_name, component=lbl.COMPONENT_SERVER
            ),
        ),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": deployment_name,
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": hpa_metrics(autoscaling),
        },
    }
