"""Helpers for running the real operator, in a subprocess, against the local Kubernetes API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from driftline_serving.examples import models as example_models
from driftline_serving.verify import main as verify_main
from tests.apiserver_support import RunningApiServer
from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "ml"
GROUP, VERSION = "driftline.io", "v1alpha1"
# The chart's identity for the operator; its ClusterRole's rules are this file, verbatim.
OPERATOR_NAMESPACE, OPERATOR_ACCOUNT = "driftline-system", "driftline-operator"
OPERATOR_RULES = REPO / "charts" / "driftline" / "files" / "operator-rules.yaml"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"


def operator_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(OPERATOR_RULES.read_text())
    assert isinstance(rules, list) and rules, f"{OPERATOR_RULES} holds no list of rules"
    return rules


def install_operator_identity(api: RunningApiServer, kubeconfig: Path) -> Path:
    """What the chart installs for the operator (its namespace, ServiceAccount, ClusterRole
    from the rules file, ClusterRoleBinding), and a kubeconfig with that account's token."""
    client = api.api_client()
    core = kubernetes.client.CoreV1Api(client)
    rbac = kubernetes.client.RbacAuthorizationV1Api(client)
    core.create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}})
    core.create_namespaced_service_account(
        OPERATOR_NAMESPACE, {"metadata": {"name": OPERATOR_ACCOUNT}}
    )
    rbac.create_cluster_role({"metadata": {"name": OPERATOR_ACCOUNT}, "rules": operator_rules()})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": OPERATOR_ACCOUNT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR_ACCOUNT,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": OPERATOR_ACCOUNT,
                    "namespace": OPERATOR_NAMESPACE,
                }
            ],
        }
    )
    token = api.service_account_token(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
    return api.write_kubeconfig(kubeconfig, token, OPERATOR_NAMESPACE)


def assert_nothing_denied(api: RunningApiServer) -> None:
    """The operator is never refused: a 403 it retried or logged and went on from would
    otherwise hide a missing grant."""
    denials = api.denials()
    assert not denials, "RBAC denied requests:\n" + "\n".join(sorted(set(denials)))


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """`tests.support.wait_until` with this folder's keywords; API errors count as not yet."""
    return wait_until(
        check, timeout, what=what, interval_s=0.1, ignore=(kubernetes.client.ApiException,)
    )


class OperatorProcess:
    """`python -m driftline.operator` with the test's kubeconfig; killable and restartable."""

    def __init__(self, kubeconfig: Path, log_dir: Path, extra_env: dict[str, str] | None = None):
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_port = 0
        self.liveness_port = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        self.metrics_port, self.liveness_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "DRIFTLINE_BLOCKED_RECHECK_SECONDS": "0.5",
            **self.extra_env,
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftline.operator",
                    "--bind",
                    "127.0.0.1",
                    "--metrics-port",
                    str(self.metrics_port),
                    "--liveness-port",
                    str(self.liveness_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()

    def healthz(self) -> int:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    def log(self) -> str:
        return "\n".join(
            (self.log_dir / f"operator-{i}.log").read_text(errors="replace")
            for i in range(1, self.starts + 1)
        )


class Cluster:
    """Typed helpers over the `kubernetes` client for the tests."""

    def __init__(self, api: RunningApiServer):
        self.api = api
        client = api.api_client()
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        self.autoscaling = kubernetes.client.AutoscalingV2Api(client)
        self.policy = kubernetes.client.PolicyV1Api(client)
        self.batch = kubernetes.client.BatchV1Api(client)

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, plural, name, patch
        )

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        obj = self.get(plural, name) or {}
        return obj.get("status") or {}

    def condition(self, plural: str, name: str, type_: str) -> tuple[str, str] | None:
        for condition in self.status(plural, name).get("conditions") or []:
            if condition["type"] == type_:
                return condition["status"], condition["reason"]
        return None

    def deployments(self) -> list[Any]:
        return self.apps.list_namespaced_deployment(NAMESPACE).items

    def events_for(self, name: str) -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(NAMESPACE).items
            if e.involved_object and e.involved_object.name == name
        ]

    def pod_object(self, name: str, labels: dict[str, str]) -> None:
        """The Pod object a kubelet would report (the operator prunes drift reports of
        pods that are not there); no process runs for it."""
        self.core.create_namespaced_pod(
            NAMESPACE,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": "server", "image": "x"}]},
            },
        )

    def report_drift(self, policy: str, reports: dict[str, Any]) -> None:
        """What drift sidecars write: their pods' reports into the policy's status."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            NAMESPACE,
            "driftpolicies",
            policy,
            {"status": {"pods": reports}},
            _content_type="application/merge-patch+json",
        )

    def set_job_outcome(self, job_name: str, *, succeed: bool, message: str, delay: float = 0.0):
        self.api.call(
            lambda: self.api.controllers.jobs.set_outcome(
                job_name, succeed=succeed, message=message, delay=delay
            )
        )


class ModelFile:
    """A real ONNX model on disk and what driftline-verify says about it."""

    def __init__(self, directory: Path, seed: int = 7):
        self.path = directory / f"mlp-{seed}.onnx"
        self.sha256 = example_models.save(example_models.classifier_mlp(seed), self.path)

    def verification_message(self, tmp_dir: Path, sha256: str | None = None) -> tuple[bool, str]:
        """Run the real driftline-verify; its termination message is what the Job reports."""
        log = tmp_dir / f"termination-{sha256 or self.sha256}"
        code = verify_main(
            [
                "--model-uri",
                str(self.path),
                "--sha256",
                sha256 or self.sha256,
                "--termination-log",
                str(log),
                "--artifact-dir",
                str(tmp_dir / "artifacts"),
            ]
        )
        return code == 0, log.read_text()


def model_version(
    name: str, model: ModelFile, *, sha256: str | None = None, version: str = "1.0.0"
):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": "churn",
            "version": version,
            # The URI is never fetched here (the Job outcome comes from model.path); only the
            # schemes a Pod can read are admitted, so it names an S3 object.
            "artifact": {
                "uri": f"s3://models/{model.path.name}",
                "sha256": sha256 or model.sha256,
            },
        },
    }


def model_deployment(name: str, version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "modelVersion": version,
            **({} if "autoscaling" in spec else {"replicas": 2}),
            **spec,
        },
    }


def verified_version(cluster: Cluster, tmp_path: Path, name: str, model: ModelFile, **kw: Any):
    """Create a ModelVersion whose verification Job reports what driftline-verify says."""
    body = model_version(name, model, **kw)
    ok, message = model.verification_message(tmp_path, body["spec"]["artifact"]["sha256"])
    cluster.set_job_outcome(f"{name}-verify", succeed=ok, message=message)
    return cluster.create("modelversions", body)
