"""The drift sidecar under the Role the operator renders for it: the real evaluator, with a
token of its ServiceAccount on the local API with RBAC on, reports into its own
DriftPolicy's status, and may do nothing else: not patch another policy's status, not read
another policy, not list policies, not touch its own policy's spec, not read anything else."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from driftline.render.labels import evaluator_account_name
from driftline.render.rbac import render_role, render_role_binding, render_service_account
from driftline_serving.evaluator.kube import KubernetesPolicyApi
from driftline_serving.evaluator.reporter import ApiError
from tests.apiserver_support import RunningApiServer, running_apiserver
from tests.support import wait_until

from .conftest import NAMESPACE, POLICY, REPO
from .test_not_evaluating import Evaluator

pytestmark = pytest.mark.timeout(120)
OTHER_POLICY = "other-drift"
SIDECAR_ACCOUNT = evaluator_account_name("churn")
SIDECAR_USER = f"system:serviceaccount:{NAMESPACE}:{SIDECAR_ACCOUNT}"


def policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": name},
        "spec": {"targetRef": {"name": "churn"}},
    }


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningApiServer]:
    with running_apiserver(crds=REPO / "crds", authorization="RBAC") as api:
        client = api.api_client()
        objects = kubernetes.client.CustomObjectsApi(client)
        for name in (POLICY, OTHER_POLICY):
            objects.create_namespaced_custom_object(
                "driftline.io", "v1alpha1", NAMESPACE, "driftpolicies", policy(name)
            )
        owner = objects.create_namespaced_custom_object(
            "driftline.io",
            "v1alpha1",
            NAMESPACE,
            "modeldeployments",
            {
                "apiVersion": "driftline.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "churn"},
                "spec": {"modelVersion": "churn-v2", "replicas": 1},
            },
        )
        # exactly what the operator applies for a policy's sidecar
        core = kubernetes.client.CoreV1Api(client)
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        core.create_namespaced_service_account(
            NAMESPACE, render_service_account(owner, model_name="churn")
        )
        rbac.create_namespaced_role(
            NAMESPACE, render_role(owner, policy_name=POLICY, model_name="churn")
        )
        rbac.create_namespaced_role_binding(
            NAMESPACE, render_role_binding(owner, model_name="churn")
        )
        yield api


@pytest.fixture
def sidecar_token(secured: RunningApiServer) -> str:
    return secured.service_account_token(NAMESPACE, SIDECAR_ACCOUNT)


def test_the_real_sidecar_reports_into_its_own_policy_and_is_refused_nothing(
    secured, sidecar_token, tmp_path
):
    kubeconfig = secured.write_kubeconfig(tmp_path / "sidecar-kubeconfig", sidecar_token)
    evaluator = Evaluator(types.SimpleNamespace(kubeconfig_path=kubeconfig), tmp_path, [])
    try:
        objects = kubernetes.client.CustomObjectsApi(secured.api_client())

        def report() -> Any:
            assert evaluator.running(), evaluator.log.read_text()
            found = objects.get_namespaced_custom_object(
                "driftline.io", "v1alpha1", NAMESPACE, "driftpolicies", POLICY
            )
            return ((found.get("status") or {}).get("pods") or {}).get(evaluator.pod)

        written = wait_until(report, 60, what="the sidecar's report in its DriftPolicy")
        assert written["state"] == "NotEvaluating"
    finally:
        evaluator.stop()
    assert secured.denials() == [], evaluator.log.read_text()
    used = {
        (use.verb, use.resource)
        for use in secured.access.uses
        if use.user == SIDECAR_USER and use.allowed
    }
    assert used == {("get", "driftpolicies"), ("patch", "driftpolicies/status")}


def sidecar_api(api: RunningApiServer, token: str, name: str) -> KubernetesPolicyApi:
    """The sidecar's own client code, aimed at `name`."""
    return KubernetesPolicyApi(api.api_client(token), NAMESPACE, name)


def test_another_policy_is_out_of_reach(secured, sidecar_token):
    other = sidecar_api(secured, sidecar_token, OTHER_POLICY)
    with pytest.raises(ApiError) as patched:
        other.patch_policy_status({"status": {"pods": {"churn-0": {"state": "Evaluating"}}}})
    assert patched.value.status == 403
    with pytest.raises(ApiError) as read:
        other.get_policy()
    assert read.value.status == 403
    assert secured.denials() == [
        f'driftpolicies.driftline.io "{OTHER_POLICY}" is forbidden: User "{SIDECAR_USER}" '
        f'cannot patch resource "driftpolicies/status" in API group "driftline.io" in the '
        f'namespace "{NAMESPACE}"',
        f'driftpolicies.driftline.io "{OTHER_POLICY}" is forbidden: User "{SIDECAR_USER}" '
        f'cannot get resource "driftpolicies" in API group "driftline.io" in the namespace '
        f'"{NAMESPACE}"',
    ]
    # its own policy's status stays within reach
    own = sidecar_api(secured, sidecar_token, POLICY)
    assert own.patch_policy_status({"status": {"pods": {}}})["metadata"]["name"] == POLICY


def forbidden(call: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        call(*args, **kwargs)
    except kubernetes.client.ApiException as error:
        return error.status == 403
    return False


def test_nothing_else_is_within_reach(secured, sidecar_token):
    client = secured.api_client(sidecar_token)
    objects = kubernetes.client.CustomObjectsApi(client)
    core = kubernetes.client.CoreV1Api(client)
    group = ("driftline.io", "v1alpha1", NAMESPACE)
    assert forbidden(objects.list_namespaced_custom_object, *group, "driftpolicies")
    # its own policy's spec is the user's, not the sidecar's
    assert forbidden(
        objects.patch_namespaced_custom_object,
        *group,
        "driftpolicies",
        POLICY,
        {"spec": {"sampling": {"rate": 1.0}}},
    )
    assert forbidden(objects.delete_namespaced_custom_object, *group, "driftpolicies", POLICY)
    assert forbidden(objects.get_namespaced_custom_object, *group, "modeldeployments", "churn")
    assert forbidden(core.list_namespaced_secret, NAMESPACE)
    assert forbidden(core.list_namespaced_pod, NAMESPACE)
    assert forbidden(core.read_namespaced_service_account, SIDECAR_ACCOUNT, NAMESPACE)
    assert forbidden(
        core.create_namespaced_service_account_token, SIDECAR_ACCOUNT, NAMESPACE, {"spec": {}}
    )
