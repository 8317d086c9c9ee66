"""Least privilege, proven: every grant in the operator's rules file is used, none is missing.

The real operator runs as the chart's ServiceAccount, bound to a ClusterRole made of
charts/driftline/files/operator-rules.yaml, on the local Kubernetes API with RBAC on,
through one deterministic scenario of what it does today: ModelVersions verified by their
Jobs (with the finalizer that guards a version in use), a ModelDeployment rolled out as a
canary behind an HTTPRoute, another one autoscaled then not, a DriftPolicy (which gives the
serving pods a sidecar with its own ServiceAccount, Role and RoleBinding), children whose
names are taken by objects the operator does not own, a write that conflicts, the periodic
re-apply, an analysis gate whose Prometheus credentials come from a Secret, confirmed drift
that retrains into a new ModelVersion, and deletion with pruning and finalizers. The API records which rule allowed each
request; the test fails naming every grant no request used and every request denied.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from driftline.apiserver.controllers import JobOutcome
from driftline.conditions import now_rfc3339
from driftline.handlers.kube import PLURALS, Kube
from driftline.render.labels import evaluator_account_name, server_selector
from tests.analysis.conftest import RecordingServer, serving
from tests.apiserver_support import RunningApiServer, running_apiserver

# The operator tests' harness (tests/operator is a folder of test modules, not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from operator_harness import (
    NAMESPACE,
    OPERATOR_USER,
    REPO,
    Cluster,
    ModelFile,
    OperatorProcess,
    install_operator_identity,
    model_deployment,
    operator_rules,
    verified_version,
    wait_for,
)
from test_rollouts import gateway_api_httproute_crd

pytestmark = pytest.mark.timeout(180)
SIDECAR_ACCOUNT = evaluator_account_name("churn")
Grant = tuple[str, str, str]  # (API group, resource[/subresource], verb)
# The kinds the operator creates for a ModelDeployment, by kind (for the name-taken step).
CHILD_KINDS = {
    kind: api_version
    for (api_version, kind) in PLURALS
    if not api_version.startswith("driftline.io") and kind not in ("Pod", "Event", "Job", "Secret")
}


def expand(rules: list[dict[str, Any]]) -> set[Grant]:
    """Every (group, resource, verb) the rules grant. Wildcards and resourceNames would make
    "was it used" a question of which objects exist, so the operator's rules have none."""
    grants: set[Grant] = set()
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"a wildcard in {field} of {rule}"
        grants |= {
            (group, resource, verb)
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
    return grants


def test_expanding_rules_names_each_grant_and_refuses_wildcards():
    rules = [{"apiGroups": ["", "apps"], "resources": ["pods"], "verbs": ["get", "list"]}]
    assert expand(rules) == {
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("apps", "pods", "get"),
        ("apps", "pods", "list"),
    }
    with pytest.raises(AssertionError, match="wildcard in verbs"):
        expand([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}])


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApiServer]:
    with running_apiserver(crds=REPO / "crds", authorization="RBAC") as running:
        client = running.api_client()
        kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": NAMESPACE}})
        kubernetes.client.ApiextensionsV1Api(client).create_custom_resource_definition(
            gateway_api_httproute_crd()
        )
        unknown = JobOutcome(False, json.dumps({"ok": False, "reason": "FetchFailed"}))
        running.call(lambda: setattr(running.controllers.jobs, "default", unknown))
        yield running


def used_grants(api: RunningApiServer) -> set[Grant]:
    return {
        (use.api_group, use.resource, use.verb)
        for use in api.call(lambda: list(api.access.uses) if api.access else [])
        if use.user == OPERATOR_USER and use.allowed and not use.path
    }


def healthy_on(cluster: Cluster, name: str, version: str) -> bool:
    status = cluster.status("modeldeployments", name)
    reconciled = cluster.condition("modeldeployments", name, "Reconciled")
    return (
        status.get("phase") == "Healthy"
        and status.get("stableVersion") == version
        and not status.get("canaryVersion")
        and reconciled is not None
        and reconciled[0] == "True"
    )


def touch(cluster: Cluster, name: str, value: str) -> None:
    """An annotation change: an event that wakes the ModelDeployment at once."""
    cluster.patch("modeldeployments", name, {"metadata": {"annotations": {"test/touch": value}}})


TAKEN = re.compile(r"(\w+) (\S+)/(\S+) already exists and is not controlled")


def orphan_children(admin: Kube, owners: set[str]) -> int:
    """Take the operator's ownership away from every child of `owners`: each becomes an
    object of the same name that the operator did not create (and must never adopt)."""
    orphaned = 0
    for kind, api_version in CHILD_KINDS.items():
        for child in admin.list(api_version, kind, NAMESPACE):
            references = child["metadata"].get("ownerReferences") or []
            if any(r.get("name") in owners for r in references):
                admin.patch_metadata(
                    api_version,
                    kind,
                    NAMESPACE,
                    child["metadata"]["name"],
                    {"ownerReferences": None},
                )
                orphaned += 1
    return orphaned


def clear_taken_names(cluster: Cluster, admin: Kube, name: str, version: str) -> set[str]:
    """Delete each squatting object the ModelDeployment's status names, one at a time, until
    it is healthy again; the kinds that were named."""
    cleared: set[tuple[str, str, str]] = set()

    def blocked() -> Any:
        for condition in cluster.status("modeldeployments", name).get("conditions") or []:
            if condition["type"] == "Reconciled" and condition["reason"] == "NameTaken":
                found = TAKEN.search(condition["message"])
                if found and found.groups() not in cleared:
                    return found.groups()
        return None

    touch(cluster, name, "taken")
    # It was healthy before its children were orphaned: the first answer must be a refusal.
    outcome: Any = wait_for(blocked, what=f"{name} refusing to adopt a child")
    while outcome != "healthy":
        assert len(cleared) < 20, f"{name} still blocked after clearing {sorted(cleared)}"
        kind, namespace, taken = outcome
        cleared.add(outcome)
        admin.delete(CHILD_KINDS[kind], kind, namespace, taken)
        touch(cluster, name, f"cleared-{len(cleared)}")
        outcome = wait_for(
            lambda: blocked() or (healthy_on(cluster, name, version) and "healthy"),
            what=f"{name} blocked by the next name or healthy",
        )
    return {kind for kind, _, _ in cleared}


def drifted_report(version: str) -> dict[str, Any]:
    """What a serving pod's drift sidecar writes once it confirms drift."""
    return {
        "state": "Evaluating",
        "evaluation": {
            "time": now_rfc3339(),
            "samples": 500,
            "drifted": True,
            "severity": "Medium",
            "features": [{"name": "x0", "test": "KolmogorovSmirnov", "drifted": True}],
        },
        "consecutiveDrifted": 1,
        "modelVersion": version,
    }


def test_every_grant_of_the_operator_is_used_and_none_is_missing(api, tmp_path):
    grants = expand(operator_rules())
    cluster = Cluster(api)
    admin = Kube(api.api_client())
    kubeconfig = install_operator_identity(api, tmp_path / "operator-kubeconfig")
    # One conflicting write per resource kind: the operator then reads it from the API.
    for plural in ("modelversions", "modeldeployments", "driftpolicies"):
        api.call(
            lambda plural=plural: api.faults.inject(409, verbs=["patch"], resource=plural, times=1)
        )
    operator = OperatorProcess(kubeconfig, tmp_path, extra_env={"DRIFTLINE_RESYNC_SECONDS": "1"})
    operator.start()
    failure: AssertionError | None = None
    prometheus = RecordingServer()  # answers every query: the gate passes
    prometheus.answer(
        200, {"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
    )
    retrained = ModelFile(tmp_path, 9)
    stack = contextlib.ExitStack()
    try:
        model = ModelFile(tmp_path, 7)
        for version in ("churn-a", "churn-b"):
            verified_version(cluster, tmp_path, version, model)
        cluster.core.create_namespaced_secret(
            NAMESPACE, {"metadata": {"name": "prometheus-auth"}, "data": {"token": "dG9rZW4="}}
        )
        cluster.create(
            "driftpolicies",
            {
                "apiVersion": "driftline.io/v1alpha1",
                "kind": "DriftPolicy",
                "metadata": {"name": "churn-drift"},
                "spec": {
                    "targetRef": {"name": "churn"},
                    "hysteresis": {"consecutiveWindows": 1},
                    "actions": [{"severity": "Medium", "action": "Retrain"}],
                    "retraining": {
                        "jobTemplate": {
                            "template": {"spec": {"containers": [{"name": "t", "image": "t"}]}}
                        }
                    },
                },
            },
        )
        stack.enter_context(serving(prometheus))
        analysis = {
            "intervalSeconds": 1,
            "count": 1,
            "driftGate": False,
            "prometheusUrl": prometheus.url,
            "prometheusSecretRef": {"name": "prometheus-auth"},
            "metrics": [{"name": "up", "query": "up", "min": 1}],
        }
        cluster.create(
            "modeldeployments",
            model_deployment(
                "churn",
                "churn-a",
                replicas=2,
                strategy={
                    "type": "Canary",
                    "canary": {"steps": [{"weight": 50}, {"weight": 100}]},
                    "analysis": analysis,
                },
                traffic={"httpRoute": [{"name": "public", "namespace": "gateways"}]},
            ),
        )
        autoscaling = {"minReplicas": 2, "maxReplicas": 4, "targetInflightRequests": 8}
        cluster.create(
            "modeldeployments", model_deployment("scaled", "churn-a", autoscaling=autoscaling)
        )
        wait_for(lambda: healthy_on(cluster, "churn", "churn-a"), what="churn healthy on a")
        wait_for(lambda: healthy_on(cluster, "scaled", "churn-a"), what="scaled healthy on a")

        # a canary behind the HTTPRoute, gated by a query with credentials from a Secret,
        # promoted: its Deployment and Service are pruned
        cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-b"}})
        wait_for(lambda: healthy_on(cluster, "churn", "churn-b"), what="churn promoted to b")
        stack.close()
        assert prometheus.requests[-1].headers["Authorization"] == "Bearer token"

        # confirmed drift retrains: a Job, and its result as a new ModelVersion
        ok, verification = retrained.verification_message(tmp_path)
        cluster.set_job_outcome(
            "churn-drift-retrain-1",
            succeed=True,
            message=json.dumps(
                {
                    "artifact": {"uri": "s3://models/r.onnx", "sha256": retrained.sha256},
                    "reference": {"uri": "s3://models/r.profile", "sha256": "c" * 64},
                    "metrics": {"accuracy": 0.9},
                }
            ),
        )
        cluster.set_job_outcome("churn-drift-retrained-1-verify", succeed=ok, message=verification)
        cluster.pod_object("churn-stable-x", server_selector("churn"))
        cluster.report_drift("churn-drift", {"churn-stable-x": drifted_report("churn-b")})
        wait_for(
            lambda: cluster.get("modelversions", "churn-drift-retrained-1") is not None,
            what="the retrained ModelVersion",
        )
        cluster.patch(
            "modeldeployments",
            "scaled",
            {"spec": {"autoscaling": {**autoscaling, "maxReplicas": 5}}},
        )
        wait_for(
            lambda: (
                cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler(
                    "scaled", NAMESPACE
                ).spec.max_replicas
                == 5
            ),
            what="the HPA changed",
        )

        # names taken by objects the operator does not own: it reads them, never adopts them
        assert orphan_children(admin, {"churn", "scaled"}) >= len(CHILD_KINDS)
        named = clear_taken_names(cluster, admin, "churn", "churn-b")
        named |= clear_taken_names(cluster, admin, "scaled", "churn-a")
        assert named == set(CHILD_KINDS), named
        # the periodic re-apply (every second here) patches every kind of child it keeps
        patches = {grant for grant in grants if grant[2] == "patch" and grant[0] != "driftline.io"}
        wait_for(lambda: patches <= used_grants(api), what="every kind of child re-applied")

        # pruning: autoscaling off, the route off, the policy gone
        cluster.patch("modeldeployments", "scaled", {"spec": {"autoscaling": None, "replicas": 2}})
        cluster.patch("modeldeployments", "churn", {"spec": {"traffic": None}})
        cluster.delete("driftpolicies", "churn-drift")
        objects = cluster.custom

        def pruned() -> bool:
            routes = objects.list_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes"
            )["items"]
            return (
                not cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler(NAMESPACE).items
                and not routes
                and not cluster.rbac.list_namespaced_role(NAMESPACE).items
                and not cluster.core.list_namespaced_service_account(
                    NAMESPACE, field_selector=f"metadata.name={SIDECAR_ACCOUNT}"
                ).items
            )

        wait_for(pruned, what="the HPA, the HTTPRoute and the sidecar's RBAC pruned")

        # deletion: a version no longer used loses its finalizer and goes
        for name in ("churn", "scaled"):
            cluster.delete("modeldeployments", name)
        cluster.delete("modelversions", "churn-a")
        wait_for(lambda: cluster.get("modelversions", "churn-a") is None, what="churn-a deleted")
    except AssertionError as error:  # a step that never happened: a denial may be why
        failure = error
    finally:
        operator.stop()
        stack.close()
    unused = sorted(grants - used_grants(api))
    denied = sorted(set(api.denials()))
    assert failure is None and not unused and not denied, (
        f"{failure or 'the scenario ran'}\n"
        "grants in charts/driftline/files/operator-rules.yaml that no request used: "
        f"{unused}\nrequests RBAC denied: {denied}\n{operator.log()[-3000:]}"
    )
