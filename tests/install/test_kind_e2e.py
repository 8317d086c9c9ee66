"""End to end on a real cluster (kind): build both images, load them into kind, install
the chart, apply the cpu-canary example and watch a canary promote.

Needs a running Docker daemon and the `kind` and `helm` binaries; skips with a clear
message where any is absent (CI has no Docker: this skip is expected there and is not
one of the missing-service skips tests/conftest.py fails on). The cluster is
kind-config.yaml's `driftline-e2e`: made when missing and deleted afterwards, unless it
existed before or DRIFTLINE_KIND_KEEP=1.

The example's model store (s3://models) does not exist in kind, so the example's
ModelVersions point at an in-cluster HTTP store serving two ONNX models made here, its
ModelDeployment runs two small replicas with short canary steps and no Prometheus gates
(no Prometheus in the cluster); everything else is the example as a user applies it.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.api.manifests import load_documents
from tests.install.helm_support import CHART, ROOT, find_helm
from tests.support import wait_until

pytestmark = pytest.mark.kind

CLUSTER = "driftline-e2e"
OPERATOR_IMAGE, SERVING_IMAGE, TAG = "driftline-operator", "driftline-serving", "e2e"
EXAMPLE = ROOT / "examples" / "cpu-canary"
GROUP, VERSION = "driftline.io", "v1alpha1"


def _docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def require_kind() -> str:
    missing = [
        what
        for what, present in (
            ("a running Docker daemon", _docker_running()),
            ("the kind binary", shutil.which("kind") is not None),
            ("helm", find_helm() is not None),
        )
        if not present
    ]
    if missing:
        pytest.skip(f"kind end-to-end suite: needs {', '.join(missing)} (see kind-config.yaml)")
    helm = find_helm()
    assert helm is not None
    return helm


def run(*args: str, timeout_s: float = 900) -> str:
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=ROOT
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_kind()
    existed = CLUSTER in run("kind", "get", "clusters").split()
    if not existed:
        run(
            "kind",
            "create",
            "cluster",
            "--config",
            str(ROOT / "kind-config.yaml"),
            "--wait",
            "180s",
        )
    path = tmp_path_factory.mktemp("kind") / "kubeconfig"
    path.write_text(run("kind", "get", "kubeconfig", "--name", CLUSTER))
    try:
        yield path
    finally:
        if not existed and os.environ.get("DRIFTLINE_KIND_KEEP") != "1":
            run("kind", "delete", "cluster", "--name", CLUSTER)


def model_store(namespace: str, models: dict[str, bytes]) -> list[dict[str, Any]]:
    """A ConfigMap with the ONNX files and an HTTP server for them (the serving image's
    Python), as an artifact store the verification Jobs and serving pods can reach."""
    import base64

    labels = {"app": "model-store"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "model-store", "namespace": namespace},
            "binaryData": {name: base64.b64encode(data).decode() for name, data in models.items()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "model-store", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "containers": [
                            {
                                "name": "http",
                                "image": f"{SERVING_IMAGE}:{TAG}",
                                "command": ["python", "-m", "http.server", "8000"],
                                "workingDir": "/models",
                                "ports": [{"containerPort": 8000}],
                                "readinessProbe": {"tcpSocket": {"port": 8000}},
                                "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                            }
                        ],
                        "volumes": [{"name": "models", "configMap": {"name": "model-store"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "model-store", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 8000, "targetPort": 8000}]},
        },
    ]


def example_for_kind(store: str, digests: dict[str, str]) -> list[dict[str, Any]]:
    """examples/cpu-canary with the artifacts in the in-cluster store."""
    from driftline_serving.examples.models import MLP_INPUTS

    documents = []
    for path in sorted(EXAMPLE.glob("*.yaml")):
        for document in load_documents(path):
            document = copy.deepcopy(document)
            if document["kind"] == "ModelVersion":
                name = document["metadata"]["name"]
                spec = document["spec"]
                spec["artifact"] = {"uri": f"{store}/{name}.onnx", "sha256": digests[name]}
                for field in ("signature", "reference"):
                    spec.pop(field, None)
                spec["features"] = [{"name": f"f{i}", "type": "numeric"} for i in range(MLP_INPUTS)]
            elif document["kind"] == "ModelDeployment":
                spec = document["spec"]
                spec.pop("autoscaling", None)
                spec.pop("topologySpread", None)
                spec["replicas"] = 2
                spec["modelVersion"] = "churn-v1"
                spec["resources"] = {"requests": {"cpu": "50m", "memory": "256Mi"}}
                spec["strategy"] = {
                    "type": "Canary",
                    "canary": {
                        "steps": [
                            {"weight": 50, "pauseSeconds": 5, "analysis": False},
                            {"weight": 100, "analysis": False},
                        ]
                    },
                }
            documents.append(document)
    return documents


def test_a_canary_promotes_on_kind(kubeconfig: Path, tmp_path: Path):
    helm = require_kind()
    import kubernetes
    from kubernetes.utils import create_from_dict

    from driftline_serving.examples.models import classifier_mlp, save

    run("docker", "build", "-f", "operator/Dockerfile", "-t", f"{OPERATOR_IMAGE}:{TAG}", ".")
    run("docker", "build", "-f", "serving-image/Dockerfile", "-t", f"{SERVING_IMAGE}:{TAG}", ".")
    run(
        "kind",
        "load",
        "docker-image",
        f"{OPERATOR_IMAGE}:{TAG}",
        f"{SERVING_IMAGE}:{TAG}",
        "--name",
        CLUSTER,
    )
    run(
        helm, "upgrade", "--install", "driftline", str(CHART),
        "--kubeconfig", str(kubeconfig),
        "--namespace", "driftline-system", "--create-namespace",
        "--set", f"operator.image.repository={OPERATOR_IMAGE},operator.image.tag={TAG}",
        "--set", "operator.image.pullPolicy=Never",
        "--set", f"serving.image.repository={SERVING_IMAGE},serving.image.tag={TAG}",
        "--wait", "--timeout", "5m",
    )  # fmt: skip

    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    custom = kubernetes.client.CustomObjectsApi(client)
    digests, models = {}, {}
    for seed, name in ((1, "churn-v1"), (2, "churn-v2")):
        path = tmp_path / f"{name}.onnx"
        digests[name] = save(classifier_mlp(seed), path)
        models[f"{name}.onnx"] = path.read_bytes()
    documents = example_for_kind("http://model-store.ml.svc:8000", digests)
    namespace = next(d for d in documents if d["kind"] == "Namespace")
    create_from_dict(client, namespace)
    for obj in model_store("ml", models):
        create_from_dict(client, obj)
    for document in documents:
        if document["kind"] in ("ModelVersion", "ModelDeployment"):
            plural = document["kind"].lower() + "s"
            custom.create_namespaced_custom_object(GROUP, VERSION, "ml", plural, document)

    def deployment_status() -> dict[str, Any]:
        body = custom.get_namespaced_custom_object(
            GROUP, VERSION, "ml", "modeldeployments", "churn"
        )
        status: dict[str, Any] = body.get("status") or {}
        return status

    wait_until(
        lambda: (
            deployment_status().get("phase") == "Healthy"
            and deployment_status().get("stableVersion") == "churn-v1"
        ),
        600,
        what="churn-v1 serving and Healthy",
        interval_s=2,
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "ml", "modeldeployments", "churn", {"spec": {"modelVersion": "churn-v2"}}
    )
    seen_canary = wait_until(
        lambda: (
            deployment_status().get("canaryVersion") == "churn-v2"
            or deployment_status().get("stableVersion") == "churn-v2"
        ),
        300,
        what="the canary of churn-v2 to start",
        interval_s=1,
    )
    assert seen_canary
    wait_until(
        lambda: (
            deployment_status().get("stableVersion") == "churn-v2"
            and deployment_status().get("phase") == "Healthy"
        ),
        600,
        what="the canary to promote churn-v2",
        interval_s=2,
    )
    assert not deployment_status().get("canaryVersion")
    client.close()
