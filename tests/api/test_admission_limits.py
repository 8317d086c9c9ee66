"""Hostile values are refused at admission, ordinary ones still pass (issue 12, issue 13).

Each refused case also has a manifest in tests/manifests/invalid; here are the values a
manifest file cannot hold (1 MB) and the many ordinary values that must stay accepted.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pydantic
import pytest
import urllib3

from driftline.api.crdgen import all_crds
from driftline.api.driftpolicy import DriftPolicy
from driftline.api.manifests import check_manifest, load_documents
from driftline.api.modeldeployment import ModelDeployment
from driftline.api.modelversion import ModelVersion

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(kind: str) -> dict[str, Any]:
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for document in load_documents(path):
            if document["kind"] == kind:
                return copy.deepcopy(document)
    raise AssertionError(f"no {kind} example")


def errors_of(document: dict[str, Any]) -> list[str]:
    return [str(e) for e in check_manifest(document)[1]]


def _schema_nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _schema_nodes(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _schema_nodes(node["additionalProperties"], f"{path}[*]")


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_every_spec_string_list_and_map_is_bounded(name: str) -> None:
    """A field added later without a limit fails here, not in a user's etcd."""
    schema = all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    unbounded = [
        path
        for path, node in _schema_nodes(schema["properties"]["spec"], "spec")
        if (node.get("type") == "string" and "maxLength" not in node and "enum" not in node)
        or (node.get("type") == "array" and "maxItems" not in node)
        or (isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node)
    ]
    assert unbounded == []


def test_a_megabyte_dataset_is_refused_with_field_and_reason() -> None:
    document = example("ModelVersion")
    document["spec"]["lineage"] = {"dataset": "s3://datasets/" + "x" * 1_000_000}
    assert errors_of(document) == [
        "spec.lineage.dataset: Too long: may not be more than 2048 bytes"
    ]
    with pytest.raises(pydantic.ValidationError, match="at most 2048 characters"):
        ModelVersion.model_validate(document)


@pytest.mark.parametrize(
    "uri",
    [
        "s3://models/churn/1.0.0/model.onnx",
        "https://artifacts.example.com/m.onnx",
        "http://mirror.models.svc.cluster.local/m.onnx",
    ],
)
def test_supported_artifact_schemes_pass(uri: str) -> None:
    document = example("ModelVersion")
    document["spec"]["artifact"]["uri"] = uri
    assert errors_of(document) == []


@pytest.mark.parametrize("uri", ["/models/x.onnx", "file:///models/x.onnx", "ftp://m/x.onnx"])
def test_unreadable_artifact_uris_are_refused_naming_the_schemes(uri: str) -> None:
    document = example("ModelVersion")
    document["spec"]["artifact"]["uri"] = uri
    errors = errors_of(document)
    assert any("must be an s3://, https:// or http:// URI" in e for e in errors), errors
    with pytest.raises(pydantic.ValidationError):
        ModelVersion.model_validate(document)


@pytest.mark.parametrize("quantity", ["1", "500m", "0.5", "1.5Gi", "512Mi", "2e3", "100k", "1E"])
def test_ordinary_quantities_pass(quantity: str) -> None:
    document = example("ModelDeployment")
    document["spec"]["resources"] = {
        "requests": {"cpu": quantity, "memory": quantity, "ephemeral-storage": quantity},
        "limits": {"example.com/fpga": quantity, "hugepages-2Mi": quantity},
    }
    assert errors_of(document) == []


@pytest.mark.parametrize("quantity", ["-1", "-500m", "+-1", "1 Gi", "1GB", "", "one", "1.2.3"])
def test_invalid_quantities_are_refused(quantity: str) -> None:
    document = example("ModelDeployment")
    document["spec"]["resources"] = {"requests": {"cpu": quantity}}
    (error,) = errors_of(document)
    assert error.startswith("spec.resources.requests[cpu]: Invalid value: ")
    with pytest.raises(pydantic.ValidationError):
        ModelDeployment.model_validate(document)


@pytest.mark.parametrize("key", ["bad key!", "/cpu", "a/b/c", "-cpu", "Example.com/gpu", "x" * 64])
def test_invalid_resource_names_are_refused(key: str) -> None:
    document = example("ModelDeployment")
    document["spec"]["resources"] = {"requests": {key: "1"}}
    (error,) = errors_of(document)
    assert error.startswith('spec.resources.requests: Invalid value: "object": every key must be')
    with pytest.raises(pydantic.ValidationError):
        ModelDeployment.model_validate(document)


def gpu_deployment(**gpu: Any) -> dict[str, Any]:
    document = example("ModelDeployment")
    document["spec"]["gpu"] = gpu
    return document


def test_ordinary_scheduling_values_pass() -> None:
    document = gpu_deployment(
        nodeSelector={
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "kubernetes.io/arch": "amd64",
            "pool": "",
            "Team_Name": "ml.platform",
        },
        runtimeClassName="nvidia",
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    document["spec"]["topologySpread"] = {"topologyKey": "topology.kubernetes.io/zone"}
    assert errors_of(document) == []
    ModelDeployment.model_validate(document)


@pytest.mark.parametrize(
    ("gpu", "field"),
    [
        ({"nodeSelector": {"bad key!": "x"}}, "spec.gpu.nodeSelector"),
        ({"nodeSelector": {"pool": "-edge-"}}, "spec.gpu.nodeSelector[pool]"),
        ({"runtimeClassName": "Bad Name!"}, "spec.gpu.runtimeClassName"),
        ({"runtimeClassName": "x" * 254}, "spec.gpu.runtimeClassName"),
    ],
)
def test_invalid_scheduling_values_are_refused(gpu: dict[str, Any], field: str) -> None:
    errors = errors_of(gpu_deployment(**gpu))
    assert errors and all(e.startswith(f"{field}: ") for e in errors), errors


@pytest.mark.parametrize(
    "hostnames",
    [["embedder.example.com"], ["*.example.com"], ["a-b.c.example"], ["xn--modle-6ra.example"]],
)
def test_gateway_api_hostnames_pass(hostnames: list[str]) -> None:
    document = example("ModelDeployment")
    document["spec"]["traffic"] = {"hostnames": hostnames}
    assert errors_of(document) == []


@pytest.mark.parametrize(
    "hostname", ["*", "", "modèle.example.com", "*.*.example.com", "Upper.example.com", "a..b"]
)
def test_invalid_hostnames_are_refused(hostname: str) -> None:
    document = example("ModelDeployment")
    document["spec"]["traffic"] = {"hostnames": [hostname]}
    errors = errors_of(document)
    assert errors and all(e.startswith("spec.traffic.hostnames[0]: ") for e in errors), errors


def with_prometheus(url: str) -> dict[str, Any]:
    document = example("ModelDeployment")
    document["spec"]["strategy"]["analysis"] = {"prometheusUrl": url}
    return document


@pytest.mark.parametrize(
    "url",
    [
        "http://prometheus.monitoring.svc:9090",
        "https://prometheus.example.com/prom/",
        "http://prometheus-operated.monitoring.svc.cluster.local:9090/",
        "http://10.0.0.12:9090",
        "http://127.0.0.1:9090",
        "http://[2001:db8::1]:9090/",
        "http://169.255.0.1/",
        "http://metadata-proxy.monitoring:8080",
        "http://thanos-0x1.monitoring:9090",
    ],
)
def test_ordinary_prometheus_urls_pass(url: str) -> None:
    assert errors_of(with_prometheus(url)) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.0.1:9090",
        "http://metadata.google.internal/",
        "http://METADATA.GOOGLE.INTERNAL:80/",
        "http://metadata/computeMetadata/v1/",
        "http://[fe80::1]/",
        "http://[FEBF::1]:9090",
        "http://[fd00:ec2::254]/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.169.254.:80/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://user@169.254.169.254/",
        "http://prometheus\\@169.254.169.254/",
        "gopher://prometheus:70/",
        "http://",
        "http://prométheus.example/",
    ],
)
def test_prometheus_urls_reaching_metadata_or_link_local_are_refused(url: str) -> None:
    errors = errors_of(with_prometheus(url))
    assert errors, url
    assert all(e.startswith("spec.strategy.analysis.prometheusUrl: ") for e in errors), errors


def retraining_policy(pod_spec: dict[str, Any]) -> dict[str, Any]:
    document = example("DriftPolicy")
    document["spec"]["retraining"]["jobTemplate"] = {"template": {"spec": pod_spec}}
    return document


SAFE_CONTAINER = {
    "name": "train",
    "image": "trainer:1",
    "securityContext": {
        "runAsUser": 1000,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    },
}


def test_a_restricted_retraining_job_passes_and_keeps_every_field() -> None:
    pod_spec = {
        "restartPolicy": "Never",
        "hostPID": False,
        "hostNetwork": False,
        "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
        "containers": [SAFE_CONTAINER],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
    }
    document = retraining_policy(pod_spec)
    stored, errors = check_manifest(document)
    assert errors == []
    # fields the schema does not declare are kept as written, not pruned
    assert stored["spec"]["retraining"]["jobTemplate"]["template"]["spec"] == pod_spec
    DriftPolicy.model_validate(document)


@pytest.mark.parametrize(
    "pod_spec",
    [
        {"hostPID": True, "containers": [SAFE_CONTAINER]},
        {"containers": [{**SAFE_CONTAINER, "securityContext": {"privileged": True}}]},
        {"ephemeralContainers": [{"name": "debug", "securityContext": {"runAsUser": 0}}]},
        {"containers": [SAFE_CONTAINER], "volumes": [{"name": "n", "hostPath": {"path": "/"}}]},
    ],
)
def test_the_operator_refuses_an_unsafe_retraining_job_too(pod_spec: dict[str, Any]) -> None:
    """A policy stored under an older CRD must not reach the operator's Job unchecked."""
    document = retraining_policy(pod_spec)
    assert errors_of(document)
    with pytest.raises(pydantic.ValidationError, match=r"not allowed|must not"):
        DriftPolicy.model_validate(document)


# --- the same refusals from the local Kubernetes API, over HTTP --------------------------

REPO = Path(__file__).resolve().parents[2]
INVALID = sorted((REPO / "tests" / "manifests" / "invalid").glob("*.yaml"))
PLURALS = {"ModelVersion": "modelversions", "ModelDeployment": "modeldeployments"}
PLURALS["DriftPolicy"] = "driftpolicies"


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kubernetes.client.ApiClient]:
    """`driftline apiserver`, a real process, with the committed CRDs."""
    directory = tmp_path_factory.mktemp("api")
    kubeconfig, log = directory / "kubeconfig", (directory / "apiserver.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("driftline")),
            "apiserver",
            "--kubeconfig",
            str(kubeconfig),
            "--crds",
            str(REPO / "crds"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists():
            assert process.poll() is None, (directory / "apiserver.log").read_text()
            assert time.monotonic() < deadline, "the local API wrote no kubeconfig in 60 s"
            time.sleep(0.05)
        client = kubernetes.config.new_client_from_config(str(kubeconfig))
        core = kubernetes.client.CoreV1Api(client)
        while True:
            try:
                core.create_namespace({"metadata": {"name": "admission"}})
                break
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError):
                assert time.monotonic() < deadline, "the local API did not answer in 60 s"
                time.sleep(0.05)
        yield client
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_the_local_api_refuses_each_invalid_manifest_with_field_and_reason(
    local_api: kubernetes.client.ApiClient, path: Path
) -> None:
    (document,) = list(load_documents(path))
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    custom = kubernetes.client.CustomObjectsApi(local_api)
    with pytest.raises(kubernetes.client.ApiException) as caught:
        custom.create_namespaced_custom_object(
            "driftline.io", "v1alpha1", "admission", PLURALS[document["kind"]], document
        )
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    assert expected in status["message"]
    field = expected.split(":", 1)[0]
    assert field in {cause["field"] for cause in status["details"]["causes"]}
    with pytest.raises(kubernetes.client.ApiException) as missing:
        custom.get_namespaced_custom_object(
            "driftline.io", "v1alpha1", "admission", PLURALS[document["kind"]], "bad"
        )
    assert missing.value.status == 404  # refused: nothing was stored
