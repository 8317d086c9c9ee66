"""Exact traffic weights through a Gateway API HTTPRoute, when spec.traffic.httpRoute names
the Gateways: one Service per track as backends, weighted as the rollout decides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.render import labels as lbl
from driftline.render.service import SERVICE_PORT

HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
# Tracks that can take traffic through the route (a blue-green preview is tested through
# its preview Service and switched to by weight 100).
ROUTED_TRACKS = ("stable", "canary", "preview")


def track_service_name(deployment_name: str, track: str) -> str:
    """The backend Service of one track (for the preview track, its preview Service)."""
    return lbl.extra_service_name(deployment_name, track)


def render_track_service(
    owner: Mapping[str, Any], *, track: str, model_name: str
) -> dict[str, Any]:
    deployment_name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": lbl.object_metadata(
            track_service_name(deployment_name, track),
            owner,
            {
                **lbl.standard_labels(
                    name=model_name, instance=deployment_name, component=lbl.COMPONENT_SERVER
                ),
                lbl.TRACK: track,
            },
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": lbl.track_selector(deployment_name, track),
            "ports": [
                {
                    "name": "http",
                    "port": SERVICE_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }


def render_httproute(
    owner: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    *,
    weights: Mapping[str, int],
    model_name: str,
) -> dict[str, Any]:
    """An HTTPRoute on the spec's Gateways whose one rule splits requests between the track
    Services by `weights` (percent per track; tracks at 0 stay listed only while they run,
    so a route never points at a Service that is gone)."""
    deployment_name = owner["metadata"]["name"]
    assert spec.traffic.http_route is not None
    parents = []
    for parent in spec.traffic.http_route:
        reference: dict[str, Any] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": parent.name,
        }
        if parent.namespace:
            reference["namespace"] = parent.namespace
        if parent.section_name:
            reference["sectionName"] = parent.section_name
        parents.append(reference)
    backends = [
        {
            "group": "",
            "kind": "Service",
            "name": track_service_name(deployment_name, track),
            "port": SERVICE_PORT,
            "weight": int(weights[track]),
        }
        for track in ROUTED_TRACKS
        if track in weights
    ]
    route: dict[str, Any] = {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": lbl.object_metadata(
            lbl.child_name(deployment_name),
            owner,
            lbl.standard_labels(
                name=model_name, instance=deployment_name, component=lbl.COMPONENT_SERVER
            ),
        ),
        "spec": {
            "parentRefs": parents,
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": backends,
                }
            ],
        },
    }
    if spec.traffic.hostnames:
        route["spec"]["hostnames"] = list(spec.traffic.hostnames)
    return route
