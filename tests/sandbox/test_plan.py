"""Pod spec -> process plan: commands, environment, volumes and path mapping (pure)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from driftline.render.deployment import SAMPLE_SOCKET, TOKEN_DIR
from driftline.render.security import ARTIFACT_DIR
from driftline.render.verification import TERMINATION_MESSAGE_PATH
from driftline.sandbox.plan import (
    BIND_ADDRESS_ENV,
    PlanError,
    PodContext,
    container_env,
    expand,
    map_path,
    plan_pod,
)
from tests.sandbox.conftest import pod_from, rendered_verification_job

CONTEXT = PodContext(
    pod_ip="127.10.0.7",
    pod_dir="/sbx/7",
    api_host="127.0.0.1",
    api_port=6443,
    token="the-token",
    kubeconfig_path="/sbx/7/kubeconfig",
    path_env="/venv/bin:/usr/bin",
    secrets={"creds": {"USER": "u", "PASS": "p"}, "model-store-credentials": {"AWS_REGION": "r"}},
    config_maps={"settings": {"level": "debug"}},
)


def by_name(plan: Any) -> dict[str, Any]:
    return {c.name: c for c in plan.containers}


def test_the_rendered_serving_pod_runs_its_commands_with_mapped_paths(deployment_pod):
    plan = plan_pod(deployment_pod, CONTEXT)
    server, evaluator = by_name(plan)["server"], by_name(plan)["drift-evaluator"]
    assert server.argv == ("driftline-serve",)
    assert evaluator.argv == ("driftline-evaluator",)
    artifacts = plan.volumes["artifacts"]
    assert artifacts == "/sbx/7/v/artifacts"
    # the emptyDir both containers mount is one directory
    assert server.mounts[ARTIFACT_DIR] == evaluator.mounts[ARTIFACT_DIR] == artifacts
    assert server.env["DRIFTLINE_ARTIFACT_DIR"] == artifacts
    # unix:// + a path under a mount: the path part is mapped, the scheme kept
    socket_dir = plan.volumes["drift-socket"]
    assert SAMPLE_SOCKET.startswith("unix:///var/run/driftline/")
    assert server.env["DRIFTLINE_DRIFT_SAMPLE_SOCKET"] == f"unix://{socket_dir}/samples.sock"
    assert evaluator.env["DRIFTLINE_DRIFT_SAMPLE_SOCKET"] == f"unix://{socket_dir}/samples.sock"
    # values that name no mounted path are left exactly as rendered
    rendered = {e["name"]: e.get("value") for e in deployment_pod["spec"]["containers"][0]["env"]}
    assert server.env["DRIFTLINE_MODEL_URI"] == rendered["DRIFTLINE_MODEL_URI"]
    assert server.env["DRIFTLINE_PORT"] == rendered["DRIFTLINE_PORT"]
    # the downward API
    assert evaluator.env["DRIFTLINE_POD_NAME"] == "churn-stable-abc12"
    assert evaluator.env["DRIFTLINE_POLICY_NAMESPACE"] == "ml"
    # what the kubelet adds: the pod's address to bind, the API, the tmp volume as TMPDIR
    for variable in BIND_ADDRESS_ENV:
        assert server.env[variable] == "127.10.0.7"
    assert server.env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert server.env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert server.env["TMPDIR"] == plan.volumes["tmp"]
    assert server.env["PATH"] == "/venv/bin:/usr/bin"
    # only the sidecar mounts the token, so only it gets the kubeconfig naming the token
    assert evaluator.env["KUBECONFIG"] == "/sbx/7/kubeconfig"
    assert "KUBECONFIG" not in server.env
    assert evaluator.mounts[TOKEN_DIR] == plan.volumes["drift-evaluator-api-access"]
    assert TOKEN_DIR not in server.mounts
    token_dir = plan.volumes["drift-evaluator-api-access"]
    assert plan.files[f"{token_dir}/token"] == "the-token"
    assert plan.files[f"{token_dir}/namespace"] == "ml"
    kubeconfig = plan.files["/sbx/7/kubeconfig"]
    assert "server: http://127.0.0.1:6443" in kubeconfig
    assert f"tokenFile: {token_dir}/token" in kubeconfig
    # probes from the spec: named port resolved
    kinds = {p.kind: p for p in server.probes}
    assert set(kinds) == {"startup", "readiness", "liveness"}
    assert kinds["readiness"].port == 8080 and kinds["readiness"].path == "/v2/health/ready"
    assert kinds["readiness"].period_s == 5
    assert plan.restart_policy == "Always"
    assert plan.grace_period_s == 45


def test_the_verification_job_writes_its_termination_message_to_a_per_container_file():
    job = rendered_verification_job()
    plan = plan_pod(pod_from(job["spec"]["template"], "churn-v1-verify-x"), CONTEXT)
    (verify,) = plan.containers
    assert verify.termination_message_path == "/sbx/7/termination/verify"
    assert verify.env["DRIFTLINE_TERMINATION_LOG"] == "/sbx/7/termination/verify"
    assert TERMINATION_MESSAGE_PATH == "/dev/termination-log"
    assert verify.termination_message_policy == "FallbackToLogsOnError"
    assert plan.restart_policy == "Never"


def test_expansion_follows_kubernetes_rules():
    variables = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", variables) == "1-two"
    assert expand("$$(A)", variables) == "$(A)"  # escaped
    assert expand("$(MISSING)", variables) == "$(MISSING)"  # undefined stays
    assert expand("$A", variables) == "$A"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/data", "/host/data"),
        ("/data/x/y", "/host/data/x/y"),
        ("/data/deep", "/host/deep"),  # the longest mountPath wins
        ("/data/deeper", "/host/data/deeper"),
        ("/database", "/database"),  # a prefix of a name, not of a path
        ("unix:///data/s.sock", "unix:///host/data/s.sock"),
        ("file:///data/m.onnx", "file:///host/data/m.onnx"),
        ("https://example.com/data/m.onnx", "https://example.com/data/m.onnx"),
        ("x=/data", "x=/data"),  # only a whole value (or argument) is a path
    ],
)
def test_only_exact_mount_path_prefixes_are_mapped(text, expected):
    mounts = {"/data": "/host/data", "/data/deep": "/host/deep"}
    assert map_path(text, mounts) == expected


def test_the_image_is_never_mapped_into_a_volume():
    """A sandbox installed under /tmp (a CI checkout) still runs its own programs when a
    pod mounts a volume at /tmp: those paths are the image's, not the volume's."""
    mounts = {"/tmp": "/pods/0/tmp"}
    roots = ("/tmp/ci/.venv", "/tmp/ci")
    assert map_path("/tmp/ci/.venv/bin/python", mounts, roots) == "/tmp/ci/.venv/bin/python"
    assert map_path("/tmp/ci/examples/x.py", mounts, roots) == "/tmp/ci/examples/x.py"
    assert map_path("/tmp/cix/y", mounts, roots) == "/pods/0/tmp/cix/y"  # not under a root
    assert map_path("/tmp/scratch", mounts, roots) == "/pods/0/tmp/scratch"


def test_the_default_image_is_this_python_and_this_repository():
    import sys

    from driftline.sandbox.plan import default_image_roots

    roots = default_image_roots()
    assert sys.prefix in roots
    repository = str(Path(__file__).resolve().parents[2])
    assert repository in roots


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "command": ["run"], **fields}


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}},
        "spec": {"containers": list(containers), **spec},
    }


def test_env_order_envfrom_references_and_field_refs():
    c = container(
        envFrom=[
            {"secretRef": {"name": "creds"}, "prefix": "S_"},
            {"configMapRef": {"name": "settings"}},
        ],
        env=[
            {"name": "FIRST", "value": "a"},
            {"name": "SECOND", "value": "$(FIRST)-b"},
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}},
            },
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "OPTIONAL",
                "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
            },
        ],
    )
    env = container_env(pod(c), c, CONTEXT)
    assert env["S_USER"] == "u" and env["S_PASS"] == "p" and env["level"] == "debug"
    assert env["SECOND"] == "a-b"
    assert env["LEVEL"] == "debug" and env["PASSWORD"] == "p"
    assert env["IP"] == "127.10.0.7" and env["APP"] == "a"
    assert "OPTIONAL" not in env


@pytest.mark.parametrize(
    ("spec_pod", "message"),
    [
        (pod({"name": "c"}), "container 'c' has no command"),
        (pod(container(), initContainers=[container()]), "initContainers are not supported"),
        (
            pod(container(), volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
            "volume 'h': hostPath is not supported",
        ),
        (
            pod(container(volumeMounts=[{"name": "nope", "mountPath": "/x"}])),
            "volumeMount 'nope' names no volume",
        ),
        (
            pod(
                container(
                    env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.priority"}}}]
                )
            ),
            "fieldRef 'spec.priority' is not supported",
        ),
        (
            pod(
                container(
                    env=[
                        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "no"}}}
                    ]
                )
            ),
            "Secret 'creds' has no key 'no'",
        ),
        (
            pod(container(readinessProbe={"exec": {"command": ["true"]}})),
            "only httpGet probes are supported",
        ),
        (
            pod(container(readinessProbe={"httpGet": {"path": "/", "port": "web"}})),
            "port 'web' names no container port",
        ),
        (pod(), "the pod has no containers"),
    ],
)
def test_what_the_sandbox_cannot_run_is_refused_with_the_reason(spec_pod, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_pod(spec_pod, CONTEXT)


def test_args_are_expanded_and_mapped_and_sub_paths_honoured():
    c = container(
        command=["run", "$(TARGET)"],
        args=["/cache/sub/file", "--flag=/cache"],
        env=[{"name": "TARGET", "value": "/cache"}],
        volumeMounts=[{"name": "v", "mountPath": "/cache", "subPath": "sub"}],
    )
    plan = plan_pod(pod(c, volumes=[{"name": "v", "emptyDir": {}}]), CONTEXT)
    (only,) = plan.containers
    assert only.argv == ("run", "/sbx/7/v/v/sub", "/sbx/7/v/v/sub/sub/file", "--flag=/cache")
    assert only.env["TARGET"] == "/sbx/7/v/v/sub"


def test_a_spec_that_sets_the_bind_variable_keeps_its_own_value():
    c = container(env=[{"name": "DRIFTLINE_HOST", "value": "127.0.0.1"}])
    (only,) = plan_pod(pod(c), CONTEXT).containers
    assert only.env["DRIFTLINE_HOST"] == "127.0.0.1"
    assert only.env["DRIFTLINE_EVALUATOR_HOST"] == "127.10.0.7"


def test_secret_and_config_map_volumes_become_files():
    spec_pod = pod(
        container(),
        volumes=[
            {"name": "s", "secret": {"secretName": "creds"}},
            {"name": "c", "configMap": {"name": "settings"}},
            {"name": "o", "configMap": {"name": "absent", "optional": True}},
        ],
    )
    plan = plan_pod(copy.deepcopy(spec_pod), CONTEXT)
    assert plan.files["/sbx/7/v/s/USER"] == "u"
    assert plan.files["/sbx/7/v/c/level"] == "debug"
    assert "/sbx/7/v/o" in plan.volumes.values()


def test_the_kubelet_s_own_values_are_never_mapped_even_under_a_mount_path():
    # a virtualenv under /tmp, and a pod that mounts /tmp: PATH stays the host's
    context = replace(CONTEXT, path_env="/tmp/venv/bin:/usr/bin")
    c = container(
        command=["/tmp/tool"],
        env=[{"name": "CACHE", "value": "/tmp/cache"}],
        volumeMounts=[{"name": "t", "mountPath": "/tmp"}],
    )
    (only,) = plan_pod(pod(c, volumes=[{"name": "t", "emptyDir": {}}]), context).containers
    assert only.env["PATH"] == "/tmp/venv/bin:/usr/bin"
    assert only.env["CACHE"] == "/sbx/7/v/t/cache"
    assert only.argv == ("/sbx/7/v/t/tool",)  # the spec's own path is the volume's


def test_a_downward_api_volume_writes_the_annotation_a_retraining_job_reads():
    # the operator hands a retraining Job its context this way (render/retraining.py)
    spec_pod = pod(
        container(volumeMounts=[{"name": "ctx", "mountPath": "/var/run/ctx"}]),
        volumes=[
            {
                "name": "ctx",
                "downwardAPI": {
                    "items": [
                        {
                            "path": "context.json",
                            "fieldRef": {"fieldPath": "metadata.annotations['example/context']"},
                        },
                        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                    ]
                },
            }
        ],
    )
    spec_pod["metadata"]["annotations"] = {"example/context": '{"trigger": "t1"}'}
    plan = plan_pod(spec_pod, CONTEXT)
    assert plan.files["/sbx/7/v/ctx/context.json"] == '{"trigger": "t1"}'
    assert plan.files["/sbx/7/v/ctx/app"] == "a"


def test_a_downward_api_item_other_than_a_field_ref_is_refused_by_name():
    volume = {
        "name": "ctx",
        "downwardAPI": {"items": [{"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]},
    }
    with pytest.raises(PlanError, match="downwardAPI item 'cpu': only fieldRef"):
        plan_pod(pod(container(), volumes=[volume]), CONTEXT)
