"""Exact weights through a Gateway API HTTPRoute: the route and its backend Services are
valid against the Gateway API and Kubernetes schemas, and follow the tracks that run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from driftline.api.modeldeployment import ModelDeployment
from driftline.render.objects import TrackPlan, render_model_deployment
from driftline.render.settings import RenderSettings

GATEWAY_SCHEMA = json.loads(
    (
        Path(__file__).parents[1] / "fixtures" / "gateway-api" / "httproute-v1.schema.json"
    ).read_text()
)


def with_route(body: dict[str, Any], **traffic: Any) -> dict[str, Any]:
    spec = {
        **body["spec"],
        "traffic": {"httpRoute": [{"name": "public", "namespace": "gateways"}], **traffic},
    }
    return {**body, "spec": spec}


def render(body: dict[str, Any], plans: list[TrackPlan], weights: dict[str, int]) -> list[dict]:
    spec = ModelDeployment.model_validate(body).spec
    return render_model_deployment(body, spec, plans, None, RenderSettings(), weights=weights)


def test_a_canary_route_splits_by_weight_between_track_services(
    cpu_deployment_body, churn_v1, churn_v2
):
    body = with_route(cpu_deployment_body, hostnames=["churn.example.com"])
    objects = render(
        body,
        [TrackPlan("stable", churn_v1, 3), TrackPlan("canary", churn_v2, 1)],
        {"stable": 75, "canary": 25},
    )
    (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
    jsonschema.validate(route, GATEWAY_SCHEMA)
    backends = route["spec"]["rules"][0]["backendRefs"]
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    assert [
        (b["weight"], services[b["name"]]["spec"]["selector"]["driftline.io/track"])
        for b in backends
    ] == [
        (75, "stable"),
        (25, "canary"),
    ]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
        }
    ]
    assert route["spec"]["hostnames"] == ["churn.example.com"]
    for service in services.values():
        kubernetes_validate.validate(service, "1.31", strict=True)


def test_a_route_never_points_at_a_track_that_does_not_run(cpu_deployment_body, churn_v1):
    objects = render(
        with_route(cpu_deployment_body),
        [TrackPlan("stable", churn_v1, 3)],
        {"stable": 100, "canary": 0},
    )
    (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
    jsonschema.validate(route, GATEWAY_SCHEMA)
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [100]


def test_a_blue_green_route_sends_everything_to_the_preview_after_the_switch(
    gpu_deployment_body, embedder
):
    objects = render(
        with_route(gpu_deployment_body),
        [TrackPlan("stable", embedder, 2), TrackPlan("preview", embedder, 2)],
        {"preview": 100, "stable": 0},
    )
    (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
    jsonschema.validate(route, GATEWAY_SCHEMA)
    by_weight = {b["weight"]: b["name"] for b in route["spec"]["rules"][0]["backendRefs"]}
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    assert services[by_weight[100]]["spec"]["selector"]["driftline.io/track"] == "preview"
    # the preview Service is also the preview's backend: one object, not two
    assert len(services) == len({s["metadata"]["name"] for s in services.values()}) == 3


def test_without_a_route_nothing_of_the_gateway_api_is_rendered(cpu_deployment_body, churn_v1):
    objects = render(cpu_deployment_body, [TrackPlan("stable", churn_v1, 3)], {"stable": 100})
    assert not [o for o in objects if o["kind"] == "HTTPRoute"]
    assert len([o for o in objects if o["kind"] == "Service"]) == 1
