"""Every built-in resource the operator uses can be created, read, listed, watched and deleted."""

from __future__ import annotations

import pytest
from conftest import http

RESOURCES = [
    ("/api/v1", "namespaces", "Namespace", False, {}),
    ("/api/v1", "pods", "Pod", True, {"spec": {"containers": [{"name": "c", "image": "i"}]}}),
    ("/api/v1", "services", "Service", True, {"spec": {"ports": [{"port": 80}]}}),
    ("/api/v1", "configmaps", "ConfigMap", True, {"data": {"a": "b"}}),
    ("/api/v1", "secrets", "Secret", True, {"stringData": {"a": "b"}}),
    ("/api/v1", "serviceaccounts", "ServiceAccount", True, {}),
    (
        "/api/v1",
        "events",
        "Event",
        True,
        {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Test"},
    ),
    (
        "/apis/apps/v1",
        "deployments",
        "Deployment",
        True,
        {
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}},
            }
        },
    ),
    (
        "/apis/batch/v1",
        "jobs",
        "Job",
        True,
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
    ),
    (
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        {"spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}},
    ),
    (
        "/apis/policy/v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        {"spec": {"minAvailable": 1}},
    ),
    ("/apis/rbac.authorization.k8s.io/v1", "roles", "Role", True, {"rules": []}),
    (
        "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
        True,
        {"roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"}},
    ),
    ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False, {"rules": []}),
    ("/apis/coordination.k8s.io/v1", "leases", "Lease", True, {"spec": {"holderIdentity": "me"}}),
    (
        "/apis/events.k8s.io/v1",
        "events",
        "Event",
        True,
        {"reason": "Test", "eventTime": "2026-01-01T00:00:00.000000Z"},
    ),
]


@pytest.mark.parametrize(
    ("prefix", "plural", "kind", "namespaced", "body"),
    RESOURCES,
    ids=[f"{r[0]}/{r[1]}" for r in RESOURCES],
)
def test_crud_and_discovery(server, prefix, plural, kind, namespaced, body):
    collection = f"{prefix}/namespaces/default/{plural}" if namespaced else f"{prefix}/{plural}"
    status, created = http(server, "POST", collection, {"metadata": {"name": "x1"}, **body})
    assert status == 201, created
    assert created["kind"] == kind and created["apiVersion"] == prefix.removeprefix(
        "/api/"
    ).removeprefix("/apis/")
    status, read = http(server, "GET", f"{collection}/x1")
    assert status == 200 and read["metadata"]["uid"] == created["metadata"]["uid"]
    status, listed = http(server, "GET", collection)
    assert (
        status == 200
        and listed["kind"] == f"{kind}List"
        and "x1" in [o["metadata"]["name"] for o in listed["items"]]
    )
    status, _ = http(server, "DELETE", f"{collection}/x1")
    assert status == 200
    assert http(server, "GET", f"{collection}/x1")[0] == 404
    status, discovery = http(server, "GET", prefix)
    entry = next(r for r in discovery["resources"] if r["name"] == plural)
    assert entry["kind"] == kind and entry["namespaced"] is namespaced
