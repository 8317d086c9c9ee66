"""The Service in front of every track that takes traffic."""

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


def render_service(
    owner: Mapping[str, Any], spec: ModelDeploymentSpec, *, model_name: str
) -> dict[str, Any]:
    """Selects active pods of all tracks: traffic splits by replica ratio between them."""
    deployment_name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": lbl.object_metadata(
            service_name(deployment_name),
            owner,
            lbl.standard_labels(
                name=model_name, instance=deployment_name, component=lbl.COMPONENT_SERVER
            ),
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": {**lbl.server_selector(deployment_name), lbl.TRAFFIC: "active"},
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
