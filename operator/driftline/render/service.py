"""The Services in front of the tracks: the one clients call, and a blue-green preview."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.render import labels as lbl
from driftline.render.settings import RenderSettings

SERVICE_PORT = 80


def service_name(deployment_name: str) -> str:
    """A DNS-1035 label, unique per ModelDeployment (see labels.child_name)."""
    return lbl.service_name(deployment_name)


def preview_service_name(deployment_name: str) -> str:
    """The blue-green preview Service (a Service, so the track names' rule applies apart)."""
    return lbl.extra_service_name(deployment_name, "preview")


def render_service(
    owner: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    *,
    model_name: str,
    active_track: str | None = None,
    preview: bool = False,
) -> dict[str, Any]:
    """The Service clients call. By default it selects the pods of every track that takes
    traffic (stable and canary), so traffic splits by replica ratio between them; a
    blue-green deployment selects one track (`active_track`), so the switch is one change
    of selector. `preview` renders the blue-green preview Service instead, which selects the
    preview track for tests before the switch."""
    deployment_name = owner["metadata"]["name"]
    selector = {**lbl.server_selector(deployment_name), lbl.TRAFFIC: "active"}
    if preview:
        selector = lbl.track_selector(deployment_name, "preview")
    elif active_track is not None:
        selector = lbl.track_selector(deployment_name, active_track)
    name = preview_service_name(deployment_name) if preview else service_name(deployment_name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": lbl.object_metadata(
            name,
            owner,
            lbl.standard_labels(
                name=model_name, instance=deployment_name, component=lbl.COMPONENT_SERVER
            ),
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
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


def serving_url(
    deployment_name: str, namespace: str, model_name: str, settings: RenderSettings
) -> str:
    """The in-cluster Open Inference Protocol endpoint of the model."""
    host = f"{service_name(deployment_name)}.{namespace}.svc.{settings.cluster_domain}"
    return f"http://{host}/v2/models/{model_name}"
