"""The per-track Deployment: CPU, GPU, MIG, sidecar on and off, all schema-valid."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from driftline.api.modeldeployment import ModelDeployment
from driftline.render import labels as lbl
from driftline.render.deployment import render_deployment
from driftline.render.settings import RenderSettings


def validate_k8s(obj):
    kubernetes_validate.validate(obj, "1.31", strict=True)


def parse_deployment(body):
    return ModelDeployment.model_validate(body)


SETTINGS = RenderSettings(serving_image="registry.test/driftline-serving:9.9")


def containers_by_name(deployment):
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_cpu_deployment_without_sidecar(cpu_deployment_body, churn_v2):
    md = parse_deployment(cpu_deployment_body)
    obj = render_deployment(
        cpu_deployment_body,
        md.spec,
        track="stable",
        model_version=churn_v2,
        replicas=None,
        policy=None,
        settings=SETTINGS,
    )
    validate_k8s(obj)
    assert obj["metadata"]["name"] == "churn-stable"
    assert obj["metadata"]["namespace"] == "ml"
    # The HPA owns replicas when autoscaling is set.
    assert "replicas" not in obj["spec"]
    pod = obj["spec"]["template"]["spec"]
    assert list(containers_by_name(obj)) == ["server"]
    server = containers_by_name(obj)["server"]
    assert server["image"] == "registry.test/driftline-serving:9.9"
    assert server["command"] == ["driftline-serve"]
    env = env_of(server)
    assert env["DRIFTLINE_MODEL_NAME"] == "churn"
    assert env["DRIFTLINE_MODEL_VERSION"] == "2.0.0"
    assert env["DRIFTLINE_MODEL_URI"] == "s3://models/churn/2.0.0/model.onnx"
    assert env["DRIFTLINE_SHA256"] == churn_v2.spec.artifact.sha256
    assert env["DRIFTLINE_MAX_BATCH_SIZE"] == "64"
    assert env["DRIFTLINE_MAX_BATCH_WAIT_MS"] == "2.0"
    assert "DRIFTLINE_GPU" not in env
    assert "DRIFTLINE_INTRA_OP_THREADS" not in env  # 0: the server matches the CPU limit
    assert "DRIFTLINE_DRIFT_SAMPLING_RATE" not in env
    assert "DRIFTLINE_DRIFT_SAMPLE_SOCKET" not in env
    assert "drift-socket" not in {v["name"] for v in pod["volumes"]}
    # Credentials only through the Secret.
    assert server["envFrom"] == [{"secretRef": {"name": "model-store-credentials"}}]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["resources"] == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "runtimeClassName" not in pod
    spread = pod["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread[0]["labelSelector"]["matchLabels"] == obj["spec"]["selector"]["matchLabels"]


def test_restricted_security_and_writable_volumes(cpu_deployment_body, churn_v2, drift_policy):
    md = parse_deployment(cpu_deployment_body)
    obj = render_deployment(
        cpu_deployment_body,
        md.spec,
        track="stable",
        model_version=churn_v2,
        replicas=2,
        policy=drift_policy,
        settings=SETTINGS,
    )
    pod = obj["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["artifacts"] and "emptyDir" in volumes["tmp"]
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/driftline/artifacts"} <= mounts


def test_sidecar_when_a_policy_targets_the_deployment(cpu_deployment_body, churn_v2, drift_policy):
    md = parse_deployment(cpu_deployment_body)
    obj = render_deployment(
        cpu_deployment_body,
        md.spec,
        track="canary",
        model_version=churn_v2,
        replicas=1,
        policy=drift_policy,
        settings=SETTINGS,
    )
    validate_k8s(obj)
    assert obj["spec"]["replicas"] == 1
    containers = containers_by_name(obj)
    assert list(containers) == ["server", "drift-evaluator"]
    sidecar = containers["drift-evaluator"]
    assert sidecar["command"] == ["driftline-evaluator"]
    assert sidecar["image"] == containers["server"]["image"]
    env = env_of(sidecar)
    assert env["DRIFTLINE_POLICY_NAME"] == "churn-drift"
    assert env["DRIFTLINE_REFERENCE_URI"] == "s3://models/churn/2.0.0/reference.dlprofile"
    assert env["DRIFTLINE_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["DRIFTLINE_REFERENCE_SHA256"] == churn_v2.spec.reference.sha256
    assert env["DRIFTLINE_BASELINE_METRICS"] == '{"accuracy":0.93,"auc":0.96}'
    server_env = env_of(containers["server"])
    assert server_env["DRIFTLINE_DRIFT_SAMPLING_RATE"] == "0.2"
    # Server and sidecar meet on a Unix socket in a volume only they share.
    socket = "unix:///var/run/driftline/samples.sock"
    assert (
        server_env["DRIFTLINE_DRIFT_SAMPLE_SOCKET"]
        == env["DRIFTLINE_DRIFT_SAMPLE_SOCKET"]
        == socket
    )
    for container in containers.values():
        assert {"name": "drift-socket", "mountPath": "/var/run/driftline"} in container[
            "volumeMounts"
        ]
    assert "drift-socket" in {v["name"] for v in obj["spec"]["template"]["spec"]["volumes"]}
    pod = obj["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "churn-drift-evaluator"


TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_only_the_sidecar_holds_the_api_token(cpu_deployment_body, churn_v2, drift_policy):
    """The serving container parses untrusted input: it must hold no credentials that
    could patch the DriftPolicy's status (issue 12). The pod mounts no token; the sidecar
    mounts the projected token, CA and namespace where in-cluster clients look."""
    md = parse_deployment(cpu_deployment_body)
    obj = render_deployment(
        cpu_deployment_body,
        md.spec,
        track="stable",
        model_version=churn_v2,
        replicas=1,
        policy=drift_policy,
        settings=SETTINGS,
    )
    validate_k8s(obj)
    pod = obj["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    containers = containers_by_name(obj)
    volumes = {v["name"]: v for v in pod["volumes"]}
    token_volumes = {
        name
        for name, volume in volumes.items()
        if any("serviceAccountToken" in s for s in volume.get("projected", {}).get("sources", []))
    }
    assert len(token_volumes) == 1
    (token_volume,) = token_volumes
    server_mounts = containers["server"]["volumeMounts"]
    assert all(m["name"] != token_volume for m in server_mounts)
    assert all(not m["mountPath"].startswith("/var/run/secrets") for m in server_mounts)
    (sidecar_mount,) = [
        m for m in containers["drift-evaluator"]["volumeMounts"] if m["name"] == token_volume
    ]
    assert sidecar_mount == {"name": token_volume, "mountPath": TOKEN_DIR, "readOnly": True}
    sources = volumes[token_volume]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"] == {
        "name": "kube-root-ca.crt",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert sources[2]["downwardAPI"]["items"] == [
        {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
    ]


def test_gpu_count_scheduling(gpu_deployment_body, embedder):
    body = copy.deepcopy(gpu_deployment_body)
    body["spec"]["gpu"] = {"count": 2, "nodeSelector": {"gpu": "a100"}}
    md = parse_deployment(body)
    obj = render_deployment(
        body,
        md.spec,
        track="stable",
        model_version=embedder,
        replicas=3,
        policy=None,
        settings=SETTINGS,
    )
    validate_k8s(obj)
    server = containers_by_name(obj)["server"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "nvidia.com/gpu" not in server["resources"]["requests"]
    assert env_of(server)["DRIFTLINE_GPU"] == "true"
    pod = obj["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    # The default toleration for the NVIDIA taint.
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert "runtimeClassName" not in pod


def test_mig_slice_scheduling(gpu_deployment_body, embedder):
    md = parse_deployment(gpu_deployment_body)
    obj = render_deployment(
        gpu_deployment_body,
        md.spec,
        track="preview",
        model_version=embedder,
        replicas=3,
        policy=None,
        settings=SETTINGS,
    )
    validate_k8s(obj)
    server = containers_by_name(obj)["server"]
    assert server["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    assert env_of(server)["DRIFTLINE_INTRA_OP_THREADS"] == "2"
    pod = obj["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    # A preview takes no traffic until the switch.
    assert obj["spec"]["template"]["metadata"]["labels"][lbl.TRAFFIC] == "preview"
    assert obj["metadata"]["name"] == "embedder-preview"


def test_labels_selector_and_owner(cpu_deployment_body, churn_v2):
    md = parse_deployment(cpu_deployment_body)
    obj = render_deployment(
        cpu_deployment_body,
        md.spec,
        track="stable",
        model_version=churn_v2,
        replicas=1,
        policy=None,
        settings=SETTINGS,
    )
    labels = obj["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "churn"
    assert labels["app.kubernetes.io/instance"] == "churn"
    assert labels["app.kubernetes.io/version"] == "2.0.0"
    assert labels["app.kubernetes.io/component"] == "model-server"
    assert labels["app.kubernetes.io/part-of"] == "driftline"
    assert labels["app.kubernetes.io/managed-by"] == "driftline"
    selector = obj["spec"]["selector"]["matchLabels"]
    # The selector is immutable in Kubernetes: it must not name the version.
    assert "app.kubernetes.io/version" not in selector
    assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    (owner,) = obj["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelDeployment",
        "name": "churn",
        "uid": cpu_deployment_body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_new_version_changes_template_but_not_selector(cpu_deployment_body, churn_v1, churn_v2):
    md = parse_deployment(cpu_deployment_body)
    old, new = (
        render_deployment(
            cpu_deployment_body,
            md.spec,
            track="stable",
            model_version=mv,
            replicas=1,
            policy=None,
            settings=SETTINGS,
        )
        for mv in (churn_v1, churn_v2)
    )
    assert old["spec"]["selector"] == new["spec"]["selector"]
    assert old["spec"]["template"] != new["spec"]["template"]


def test_image_from_spec_overrides_settings(cpu_deployment_body, churn_v2):
    body = copy.deepcopy(cpu_deployment_body)
    body["spec"]["serving"]["image"] = "example.org/custom:1"
    md = parse_deployment(body)
    obj = render_deployment(
        body,
        md.spec,
        track="stable",
        model_version=churn_v2,
        replicas=1,
        policy=None,
        settings=SETTINGS,
    )
    assert containers_by_name(obj)["server"]["image"] == "example.org/custom:1"


def test_unknown_track_is_refused(cpu_deployment_body, churn_v2):
    md = parse_deployment(cpu_deployment_body)
    with pytest.raises(ValueError, match="unknown track 'blue'"):
        render_deployment(
            cpu_deployment_body,
            md.spec,
            track="blue",
            model_version=churn_v2,
            replicas=1,
            policy=None,
            settings=SETTINGS,
        )


def test_long_names_stay_within_kubernetes_limits(cpu_deployment_body, churn_v2):
    body = copy.deepcopy(cpu_deployment_body)
    body["metadata"]["name"] = "a" * 60
    md = parse_deployment(body)
    stable, canary = (
        render_deployment(
            body,
            md.spec,
            track=track,
            model_version=churn_v2,
            replicas=1,
            policy=None,
            settings=SETTINGS,
        )
        for track in ("stable", "canary")
    )
    validate_k8s(stable)
    assert len(stable["metadata"]["name"]) <= 63
    assert stable["metadata"]["name"] != canary["metadata"]["name"]
