"""`driftline apiserver` as a process, and kubectl against it (skipped where kubectl is absent)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest
import yaml
from conftest import REPO_ROOT, running_apiserver, wait_for

KUBECTL = shutil.which("kubectl")
DRIFTLINE = [sys.executable, "-c", "from driftline.cli import main; main()"]
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@pytest.fixture
def served(tmp_path: Path):
    """`driftline apiserver` in a subprocess, stopped with SIGTERM."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [*DRIFTLINE, "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig)],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: kubeconfig.exists() or process.poll() is not None,
            timeout=60,
            message="kubeconfig written",
        )
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        yield process, kubeconfig
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_command_serves_until_sigterm_with_a_kubeconfig(served):
    process, kubeconfig = served
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"].startswith("http://127.0.0.1:")
    client = kubernetes.config.new_client_from_config(str(kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    assert "default" in [n.metadata.name for n in core.list_namespace().items]
    if (REPO_ROOT / "crds").is_dir():
        crds = kubernetes.client.ApiextensionsV1Api(client).list_custom_resource_definition()
        assert "modelversions.driftline.io" in [c.metadata.name for c in crds.items]
    client.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_command_rejects_a_missing_crds_directory(tmp_path):
    result = subprocess.run(
        [
            *DRIFTLINE,
            "apiserver",
            "--kubeconfig",
            str(tmp_path / "k"),
            "--crds",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert not (tmp_path / "k").exists()


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent)}
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


@needs_kubectl
def test_kubectl_apply_get_patch_delete(apiserver):
    kubeconfig = apiserver.kubeconfig_path
    manifest = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"app": "x"}},
            "data": {"a": "1"},
        }
    )
    applied = kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    assert "configmap/cm created" in applied.stdout
    got = json.loads(kubectl(kubeconfig, "get", "configmap", "cm", "-o", "json").stdout)
    assert got["data"] == {"a": "1"}
    listed = kubectl(kubeconfig, "get", "cm", "-l", "app=x")
    assert listed.returncode == 0 and "cm" in listed.stdout
    patched = kubectl(
        kubeconfig, "patch", "configmap", "cm", "--type", "merge", "-p", '{"data":{"a":"2"}}'
    )
    assert patched.returncode == 0, patched.stderr
    reapplied = kubectl(
        kubeconfig, "apply", "--validate=false", "-f", "-", stdin=manifest.replace("'1'", "'3'")
    )
    assert reapplied.returncode == 0, reapplied.stderr
    assert json.loads(kubectl(kubeconfig, "get", "configmap", "cm", "-o", "json").stdout)[
        "data"
    ] == {"a": "3"}
    deleted = kubectl(kubeconfig, "delete", "configmap", "cm")
    assert deleted.returncode == 0, deleted.stderr
    assert kubectl(kubeconfig, "get", "configmap", "cm").returncode != 0


@needs_kubectl
def test_kubectl_server_side_apply_and_custom_resources(apiserver):
    kubeconfig = apiserver.kubeconfig_path
    if not (REPO_ROOT / "crds").is_dir():
        pytest.skip("the project's CRDs are not generated")
    created = kubectl(
        kubeconfig, "apply", "--server-side", "--validate=false", "-f", str(REPO_ROOT / "crds")
    )
    assert created.returncode == 0, created.stderr
    wait_for(
        lambda: kubectl(kubeconfig, "get", "modelversions").returncode == 0, message="CRDs served"
    )
    typed = kubectl(
        kubeconfig, "create", "namespace", "ml"
    )  # kubectl's typed create sends protobuf
    assert typed.returncode == 0, typed.stderr
    applied = kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--validate=false",
        "-f",
        str(REPO_ROOT / "examples/cpu-canary/modelversions.yaml"),
    )
    assert applied.returncode == 0, applied.stderr
    listed = kubectl(kubeconfig, "get", "mv", "-n", "ml", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["items"]) >= 1
    resources = kubectl(kubeconfig, "api-resources", "--api-group=driftline.io")
    assert "modelversions" in resources.stdout and "mv" in resources.stdout


def test_command_refuses_an_invalid_crd_and_writes_no_kubeconfig(tmp_path):
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "bad.yaml").write_text(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: wrong.example.com}\nspec: {group: example.com, names: {plural: things, kind: Thing}, versions: [{name: v1, served: true, storage: true}]}\n"
    )
    kubeconfig = tmp_path / "kubeconfig"
    result = subprocess.run(
        [*DRIFTLINE, "apiserver", "--kubeconfig", str(kubeconfig), "--crds", str(crds)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot load the CRDs" in result.stderr and "things.example.com" in result.stderr
    assert not kubeconfig.exists()


@needs_kubectl
def test_kubectl_get_prints_the_crd_printer_columns(apiserver):
    kubeconfig = apiserver.kubeconfig_path
    if not (REPO_ROOT / "crds" / "modelversions.driftline.io.yaml").exists():
        pytest.skip("the project's CRDs are not generated")
    assert (
        kubectl(
            kubeconfig, "apply", "--server-side", "--validate=false", "-f", str(REPO_ROOT / "crds")
        ).returncode
        == 0
    )
    namespace = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    )
    assert (
        kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", stdin=namespace).returncode == 0
    )
    examples = str(REPO_ROOT / "examples/cpu-canary/modelversions.yaml")
    assert (
        kubectl(kubeconfig, "apply", "--server-side", "--validate=false", "-f", examples).returncode
        == 0
    )
    printed = kubectl(kubeconfig, "get", "mv", "-n", "ml")
    assert printed.returncode == 0, printed.stderr
    header, *rows = printed.stdout.splitlines()
    crd = yaml.safe_load((REPO_ROOT / "crds" / "modelversions.driftline.io.yaml").read_text())
    columns = [
        c["name"].upper() for c in crd["spec"]["versions"][0].get("additionalPrinterColumns", [])
    ]
    expected = ["NAME", *(c for c in columns if c != "AGE"), "AGE"]
    assert header.split() == expected
    assert rows[0].split()[0] == "churn-v1"


@pytest.fixture
def with_crds(tmp_path: Path):
    """A fresh local API with the project's CRDs loaded, and a kubeconfig for kubectl."""
    if not (REPO_ROOT / "crds").is_dir():
        pytest.skip("the project's CRDs are not generated")
    with running_apiserver(kubeconfig_path=tmp_path / "kubeconfig", crds=REPO_ROOT / "crds") as api:
        yield api


@needs_kubectl
def test_kubectl_apply_validates_with_the_served_openapi(with_crds):
    kubeconfig = with_crds.kubeconfig_path
    namespace = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    )
    created = kubectl(kubeconfig, "apply", "-f", "-", stdin=namespace)  # default validation
    assert created.returncode == 0, created.stderr
    applied = kubectl(kubeconfig, "apply", "-f", str(REPO_ROOT / "examples/cpu-canary"))
    assert applied.returncode == 0, applied.stderr
    assert "modelversion.driftline.io/churn-v1 created" in applied.stdout


@needs_kubectl
def test_kubectl_apply_twice_computes_a_strategic_merge_patch_from_openapi_v3(with_crds):
    kubeconfig = with_crds.kubeconfig_path
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }
    first = kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    assert first.returncode == 0, first.stderr
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    second = kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(deployment))
    assert second.returncode == 0, second.stderr
    assert "deployment.apps/web configured" in second.stdout
    got = json.loads(kubectl(kubeconfig, "get", "deploy", "web", "-o", "json").stdout)
    assert got["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "web:2", "ports": [{"containerPort": 80}]}
    ]


@needs_kubectl
def test_kubectl_explain_reads_custom_and_built_in_schemas(with_crds):
    kubeconfig = with_crds.kubeconfig_path
    custom = kubectl(kubeconfig, "explain", "modeldeployment.spec.strategy")
    assert custom.returncode == 0, custom.stderr
    assert "KIND:       ModelDeployment" in custom.stdout
    assert "canary\t<Object>" in custom.stdout and "blueGreen\t<Object>" in custom.stdout
    builtin = kubectl(kubeconfig, "explain", "deployment.spec")
    assert builtin.returncode == 0, builtin.stderr
    assert "FIELD: spec <DeploymentSpec>" in builtin.stdout
    assert (
        "replicas\t<integer>" in builtin.stdout and "template\t<PodTemplateSpec>" in builtin.stdout
    )
    missing = kubectl(kubeconfig, "explain", "modeldeployment.spec.stratgey")
    assert missing.returncode != 0 and "stratgey" in missing.stderr


def _misspelled_example() -> str:
    text = (REPO_ROOT / "examples/cpu-canary/modeldeployment.yaml").read_text()
    assert "  strategy:" in text and "maxBatchSize:" in text
    return text.replace("  strategy:", "  stratgey:", 1).replace(
        "maxBatchSize:", "maxBatchDelay:", 1
    )


@needs_kubectl
def test_kubectl_refuses_misspelled_fields_by_default(with_crds):
    kubeconfig = with_crds.kubeconfig_path
    namespace = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    )
    assert kubectl(kubeconfig, "apply", "-f", "-", stdin=namespace).returncode == 0
    refused = kubectl(kubeconfig, "apply", "-f", "-", stdin=_misspelled_example())
    assert refused.returncode != 0
    assert 'unknown field "spec.stratgey"' in refused.stderr
    assert 'unknown field "spec.serving.maxBatchDelay"' in refused.stderr
    assert kubectl(kubeconfig, "get", "mdep", "churn", "-n", "ml").returncode != 0
    server_side = kubectl(
        kubeconfig, "apply", "--server-side", "-f", "-", stdin=_misspelled_example()
    )
    assert server_side.returncode != 0
    assert ".spec.stratgey: field not declared in schema" in server_side.stderr
    warned = kubectl(kubeconfig, "apply", "--validate=warn", "-f", "-", stdin=_misspelled_example())
    assert warned.returncode == 0, warned.stderr
    assert 'Warning: unknown field "spec.stratgey"' in warned.stderr


EXAMPLE_DIRECTORIES = sorted(p for p in (REPO_ROOT / "examples").iterdir() if p.is_dir())


@needs_kubectl
@pytest.mark.parametrize("example", EXAMPLE_DIRECTORIES, ids=lambda p: p.name)
def test_each_example_applies_as_written_to_a_fresh_api(with_crds, example):
    """`kubectl apply -f examples/<dir>` with kubectl's default validation, nothing made first."""
    applied = kubectl(with_crds.kubeconfig_path, "apply", "-f", str(example))
    assert applied.returncode == 0, applied.stderr
    assert "Warning" not in applied.stderr
    for document in (
        d for f in sorted(example.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
    ):
        if document["kind"] == "Namespace":
            continue
        namespace = document["metadata"]["namespace"]
        got = kubectl(
            with_crds.kubeconfig_path,
            "get",
            document["kind"].lower(),
            document["metadata"]["name"],
            "-n",
            namespace,
        )
        assert got.returncode == 0, got.stderr


BUILT_IN_OBJECTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox"}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: "busybox"}]
---
apiVersion: v1
kind: Event
metadata: {name: e1}
involvedObject: {kind: Pod, name: p, namespace: default}
reason: Started
message: "Started container c"
type: Normal
"""


@needs_kubectl
def test_kubectl_get_prints_the_usual_columns_of_built_in_kinds(apiserver):
    kubeconfig = apiserver.kubeconfig_path
    applied = kubectl(kubeconfig, "apply", "-f", "-", stdin=BUILT_IN_OBJECTS)
    assert applied.returncode == 0, applied.stderr
    wait_for(
        lambda: "Complete" in kubectl(kubeconfig, "get", "job", "once").stdout,
        message="the job stand-in completes it",
    )

    def table(*args: str) -> list[list[str]]:
        printed = kubectl(kubeconfig, "get", *args)
        assert printed.returncode == 0, printed.stderr
        return [line.split() for line in printed.stdout.splitlines()]

    deployments = table("deploy")
    assert deployments[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deployments[1][0] == "web" and deployments[1][1] in ("0/2", "1/2", "2/2")
    assert table("deploy", "-o", "wide")[0][-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    jobs = table("jobs")
    assert jobs[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert jobs[1][:3] == ["once", "Complete", "1/1"]
    services = table("services")
    assert services[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert services[1][:2] == ["web", "ClusterIP"] and services[1][4] == "80/TCP"
    pods = table("pods")
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert ["p", "0/1", "Pending", "0"] in [row[:4] for row in pods]
    events = table("events")
    assert events[0] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1][1:5] == ["Normal", "Started", "pod/p", "Started"]


@needs_kubectl
def test_kubectl_typed_create_commands_send_protobuf_that_the_api_reads(apiserver):
    kubeconfig = apiserver.kubeconfig_path
    for command in (
        ["create", "namespace", "ml"],
        ["create", "deployment", "web", "-n", "ml", "--image=web:1", "--port=80", "--replicas=0"],
        ["create", "configmap", "settings", "-n", "ml", "--from-literal=a=1", "--from-literal=b=2"],
        ["create", "service", "clusterip", "web", "-n", "ml", "--tcp=80:8080"],
    ):
        created = kubectl(kubeconfig, *command)
        assert created.returncode == 0, created.stderr

    def get(*args: str) -> dict:
        got = kubectl(kubeconfig, "get", *args, "-o", "json")
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout)

    assert get("namespace", "ml")["status"]["phase"] == "Active"
    deployment = get("deployment", "web", "-n", "ml")
    assert deployment["metadata"]["labels"] == {"app": "web"}
    assert deployment["spec"]["replicas"] == 0  # an explicit zero survives the decoding
    assert deployment["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "web:1", "ports": [{"containerPort": 80}], "resources": {}}
    ]
    assert get("configmap", "settings", "-n", "ml")["data"] == {"a": "1", "b": "2"}
    port = get("service", "web", "-n", "ml")["spec"]["ports"][0]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")
