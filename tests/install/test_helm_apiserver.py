"""`helm install`, `helm upgrade` and `helm uninstall` of the chart against the local
Kubernetes API (discovery, OpenAPI, server-side apply, release Secrets: what helm needs).

The objects are read back from the API: what helm created, changed and removed, not
what it printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from driftline.cli.crds import chart_crds
from tests.apiserver_support import RunningApiServer, running_apiserver
from tests.install.helm_support import CHART, require_helm, run_helm

NAMESPACE = "driftline-system"
OPERATOR_RULES = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RunningApiServer]:
    require_helm()
    with running_apiserver(kubeconfig_path=tmp_path / "kubeconfig") as running:
        yield running


def helm(cluster: RunningApiServer, home: Path, *args: str) -> str:
    done = run_helm([*args, "--kubeconfig", str(cluster.kubeconfig_path)], home, timeout_s=180)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def names(items: list[Any]) -> set[str]:
    return {item.metadata.name for item in items}


def test_install_upgrade_and_uninstall(cluster: RunningApiServer, tmp_path: Path):
    client = cluster.api_client()
    core = kubernetes.client.CoreV1Api(client)
    apps = kubernetes.client.AppsV1Api(client)
    rbac = kubernetes.client.RbacAuthorizationV1Api(client)
    extensions = kubernetes.client.ApiextensionsV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    release = ["driftline", str(CHART), "--namespace", NAMESPACE]

    # install: two peered replicas, cluster-wide, the chart's CRDs first
    notes = helm(
        cluster,
        tmp_path,
        "install",
        *release,
        "--create-namespace",
        "--values",
        str(CHART / "ci" / "replicas-values.yaml"),
    )
    assert "kubectl -n driftline-system rollout status deployment/driftline-operator" in notes
    assert {crd["metadata"]["name"] for crd in chart_crds().values()} <= names(
        extensions.list_custom_resource_definition().items
    )
    deployment = apps.read_namespaced_deployment("driftline-operator", NAMESPACE)
    assert deployment.spec.replicas == 2
    assert "--peering=driftline-ha" in deployment.spec.template.spec.containers[0].args
    role = client.sanitize_for_serialization(rbac.read_cluster_role("driftline-operator"))
    assert role["rules"] == OPERATOR_RULES
    assert "driftline-operator-peering" in names(rbac.list_cluster_role().items)
    peering = custom.get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", "driftline-ha"
    )
    assert peering["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"

    # upgrade: confine the operator to two namespaces, one replica
    for namespace in ("ml-team", "vision"):
        core.create_namespace({"metadata": {"name": namespace}})
    helm(
        cluster,
        tmp_path,
        "upgrade",
        *release,
        "--values",
        str(CHART / "ci" / "namespaced-values.yaml"),
    )
    deployment = apps.read_namespaced_deployment("driftline-operator", NAMESPACE)
    args = deployment.spec.template.spec.containers[0].args
    assert deployment.spec.replicas == 1
    assert "--namespace=ml-team" in args and "--namespace=vision" in args
    assert not any(a.startswith("--peering") for a in args)
    cluster_roles = names(rbac.list_cluster_role().items)
    assert "driftline-operator" not in cluster_roles  # the ClusterRole is gone
    assert "driftline-operator-peering" not in cluster_roles
    for namespace in ("ml-team", "vision"):
        role = client.sanitize_for_serialization(
            rbac.read_namespaced_role("driftline-operator", namespace)
        )
        assert role["rules"] == OPERATOR_RULES
        assert "driftline-operator" in names(rbac.list_namespaced_role_binding(namespace).items)
    with pytest.raises(kubernetes.client.ApiException) as gone:
        custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "driftline-ha")
    assert gone.value.status == 404
    history = json.loads(
        helm(cluster, tmp_path, "history", "driftline", "-n", NAMESPACE, "-o", "json")
    )
    assert [(entry["revision"], entry["status"]) for entry in history] == [
        (1, "superseded"),
        (2, "deployed"),
    ]

    # uninstall: the release's objects go; the CRDs stay (helm never deletes them, nor
    # the resources of users that they hold)
    helm(cluster, tmp_path, "uninstall", "driftline", "--namespace", NAMESPACE)
    assert "driftline-operator" not in names(apps.list_namespaced_deployment(NAMESPACE).items)
    assert "driftline-operator" not in names(core.list_namespaced_service_account(NAMESPACE).items)
    for namespace in ("ml-team", "vision"):
        assert "driftline-operator" not in names(rbac.list_namespaced_role(namespace).items)
    assert not [
        secret
        for secret in core.list_namespaced_secret(NAMESPACE).items
        if secret.type == "helm.sh/release.v1"
    ]
    assert "modeldeployments.driftline.io" in names(
        extensions.list_custom_resource_definition().items
    )
    assert helm(cluster, tmp_path, "list", "--all-namespaces", "-q").strip() == ""
    client.close()
