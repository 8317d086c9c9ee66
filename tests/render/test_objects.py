"""Service, HPA, PDB, sidecar RBAC and the whole object set, all schema-valid."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from driftline.api.modeldeployment import Autoscaling, ModelDeployment
from driftline.render.hpa import INFLIGHT_METRIC, hpa_metrics, render_hpa
from driftline.render.labels import name_digest
from driftline.render.objects import TrackPlan, render_model_deployment
from driftline.render.pdb import render_pdb
from driftline.render.rbac import render_role, render_role_binding, render_service_account
from driftline.render.service import render_service, serving_url
from driftline.render.settings import RenderSettings

SETTINGS = RenderSettings()


def validate_k8s(obj):
    kubernetes_validate.validate(obj, "1.31", strict=True)


def kinds(objects):
    return [o["kind"] for o in objects]


def test_service_selects_active_pods_of_all_tracks(cpu_deployment_body):
    md = ModelDeployment.model_validate(cpu_deployment_body)
    service = render_service(cpu_deployment_body, md.spec, model_name="churn")
    validate_k8s(service)
    assert service["metadata"]["name"] == "churn"
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/instance": "churn",
        "app.kubernetes.io/component": "model-server",
        "driftline.io/traffic": "active",
    }
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_serving_url_uses_the_cluster_domain():
    settings = RenderSettings(cluster_domain="corp.local")
    assert (
        serving_url("churn", "ml", "churn", settings)
        == "http://churn.ml.svc.corp.local/v2/models/churn"
    )


def test_hpa_with_cpu_and_inflight_metrics(cpu_deployment_body):
    md = ModelDeployment.model_validate(cpu_deployment_body)
    assert md.spec.autoscaling is not None
    hpa = render_hpa(cpu_deployment_body, md.spec.autoscaling, model_name="churn")
    validate_k8s(hpa)
    spec = hpa["spec"]
    # The ModelDeployment itself (its scale subresource): the operator splits the total
    # between the tracks of a rollout (issue 14).
    assert spec["scaleTargetRef"] == {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelDeployment",
        "name": "churn",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    cpu, inflight = spec["metrics"]
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert inflight["type"] == "Pods"
    assert inflight["pods"]["metric"]["name"] == INFLIGHT_METRIC == "driftline_in_flight_requests"
    assert inflight["pods"]["target"] == {"type": "AverageValue", "averageValue": "16"}


def test_hpa_with_a_single_metric():
    only_inflight = Autoscaling(max_replicas=4, target_inflight_requests=8)
    assert [m["type"] for m in hpa_metrics(only_inflight)] == ["Pods"]
    only_cpu = Autoscaling(max_replicas=4, target_cpu_utilization=50)
    assert [m["type"] for m in hpa_metrics(only_cpu)] == ["Resource"]


def test_hpa_without_any_target_is_refused():
    # The CRD's CEL rule refuses this; the renderer must not silently emit an empty HPA.
    with pytest.raises(ValueError, match="targetCPUUtilization"):
        hpa_metrics(Autoscaling(max_replicas=4))


def test_pdb(cpu_deployment_body):
    pdb = render_pdb(cpu_deployment_body, model_name="churn")
    validate_k8s(pdb)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "churn",
        "app.kubernetes.io/component": "model-server",
    }


def test_sidecar_rbac_is_least_privilege(cpu_deployment_body):
    account = render_service_account(cpu_deployment_body, model_name="churn")
    role = render_role(cpu_deployment_body, policy_name="churn-drift", model_name="churn")
    binding = render_role_binding(cpu_deployment_body, model_name="churn")
    for obj in (account, role, binding):
        validate_k8s(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "drift-evaluator"
    read, write_status = role["rules"]
    assert read == {
        "apiGroups": ["driftline.io"],
        "resources": ["driftpolicies"],
        "resourceNames": ["churn-drift"],
        "verbs": ["get", "watch"],
    }
    assert write_status == {
        "apiGroups": ["driftline.io"],
        "resources": ["driftpolicies/status"],
        "resourceNames": ["churn-drift"],
        "verbs": ["patch"],
    }
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "ml"}
    ]


def test_full_set_with_autoscaling_and_sidecar(cpu_deployment_body, churn_v2, drift_policy):
    md = ModelDeployment.model_validate(cpu_deployment_body)
    objects = render_model_deployment(
        cpu_deployment_body, md.spec, [TrackPlan("stable", churn_v2, None)], drift_policy, SETTINGS
    )
    assert kinds(objects) == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    for obj in objects:
        validate_k8s(obj)
        assert obj["metadata"]["ownerReferences"][0]["controller"] is True
        assert obj["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
        labels = obj["metadata"]["labels"]
        for key in ("name", "instance", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels


def test_fixed_replicas_without_sidecar_and_two_tracks(gpu_deployment_body, embedder, churn_v2):
    md = ModelDeployment.model_validate(gpu_deployment_body)
    objects = render_model_deployment(
        gpu_deployment_body,
        md.spec,
        [TrackPlan("stable", embedder, 3), TrackPlan("preview", embedder, 3)],
        None,
        SETTINGS,
    )
    # A preview track is reachable behind its own Service (issue 14: blue-green preview);
    # the example routes through a Gateway, so the stable track gets a backend Service
    # and an HTTPRoute splits between them.
    assert kinds(objects) == [
        "Deployment",
        "Deployment",
        "Service",
        "Service",
        "Service",
        "HTTPRoute",
        "PodDisruptionBudget",
    ]
    names = [o["metadata"]["name"] for o in objects]
    assert len(set(names[:2])) == 2
    service, preview = objects[2], objects[3]
    assert service["spec"]["selector"]["driftline.io/traffic"] == "active"
    assert preview["spec"]["selector"]["driftline.io/track"] == "preview"
    assert preview["metadata"]["name"] != service["metadata"]["name"]
    for obj in objects:
        if obj["kind"] != "HTTPRoute":  # Gateway API: tests/render/test_httproute.py
            validate_k8s(obj)


def test_no_tracks_renders_nothing(cpu_deployment_body):
    md = ModelDeployment.model_validate(cpu_deployment_body)
    assert render_model_deployment(cpu_deployment_body, md.spec, [], None, SETTINGS) == []


def test_rendering_is_deterministic(cpu_deployment_body, churn_v2, drift_policy):
    md = ModelDeployment.model_validate(cpu_deployment_body)
    plan = [TrackPlan("stable", churn_v2, None)]
    first = render_model_deployment(cpu_deployment_body, md.spec, plan, drift_policy, SETTINGS)
    second = render_model_deployment(
        copy.deepcopy(cpu_deployment_body), md.spec, plan, drift_policy, SETTINGS
    )
    assert first == second


def test_settings_from_environment():
    settings = RenderSettings.from_environment(
        {"DRIFTLINE_SERVING_IMAGE": "example.org/s:2", "DRIFTLINE_CLUSTER_DOMAIN": "x.local"}
    )
    assert settings.serving_image == "example.org/s:2"
    assert settings.cluster_domain == "x.local"
    assert RenderSettings.from_environment({}).serving_image == RenderSettings().serving_image


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("churn", "churn"),
        # Names that had to be transformed carry a hash of the original (issue 12): so
        # that churn.v1 and churn-v1, or 7up and md-7up, never share one Service.
        ("churn.v1", f"churn-v1--{name_digest('churn.v1')}"),
        ("7up", f"md-7up--{name_digest('7up')}"),
    ],
)
def test_service_name_is_a_dns_1035_label(cpu_deployment_body, name, expected):
    body = copy.deepcopy(cpu_deployment_body)
    body["metadata"]["name"] = name
    md = ModelDeployment.model_validate(body)
    service = render_service(body, md.spec, model_name="churn")
    validate_k8s(service)
    assert service["metadata"]["name"] == expected


def test_a_blue_green_service_selects_the_active_track_only(gpu_deployment_body, embedder):
    md = ModelDeployment.model_validate(gpu_deployment_body)
    plans = [TrackPlan("stable", embedder, 3), TrackPlan("preview", embedder, 3)]
    for active in ("stable", "preview"):
        objects = render_model_deployment(
            gpu_deployment_body, md.spec, plans, None, SETTINGS, active_track=active
        )
        (service,) = [
            o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "embedder"
        ]
        assert service["spec"]["selector"]["driftline.io/track"] == active
        assert "driftline.io/traffic" not in service["spec"]["selector"]
        validate_k8s(service)
