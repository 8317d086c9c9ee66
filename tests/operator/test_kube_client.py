"""The operator's API module against the local Kubernetes API over HTTP, and its error mapping."""

from __future__ import annotations

import pytest
from operator_harness import NAMESPACE

from driftline.apiserver.faults import Fault
from driftline.handlers import kube as kube_errors
from driftline.handlers.kube import Kube, KubeError, resource_path
from driftline.handlers.retry import MAX_BACKOFF_SECONDS, backoff_seconds, reason_for, retry_delay
from driftline.reconcile.merge_patch import merge_patch


def service_body(name="svc"):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"a": "1"}},
        "spec": {"selector": {"app": "x"}, "ports": [{"name": "http", "port": 80}]},
    }


@pytest.fixture
def kube(api):
    return Kube(api.api_client())


def test_server_side_apply_is_idempotent(kube):
    first = kube.apply(service_body())
    again = kube.apply(service_body())
    # Nothing changed, so nothing was written.
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {entry["manager"] for entry in again["metadata"].get("managedFields", [])}
    assert "driftline" in managers
    changed = service_body()
    changed["metadata"]["labels"]["a"] = "2"
    assert kube.apply(changed)["metadata"]["labels"]["a"] == "2"


def test_get_delete_and_missing_objects(kube):
    assert kube.get("v1", "Service", NAMESPACE, "nope") is None
    assert kube.delete("v1", "Service", NAMESPACE, "nope") is False
    kube.apply(service_body("gone"))
    assert kube.delete("v1", "Service", NAMESPACE, "gone") is True
    assert [s["metadata"]["name"] for s in kube.list("v1", "Service", NAMESPACE, "a=1")] == []


def test_status_write_from_a_stale_read_conflicts(api, cluster, kube):
    cluster.create(
        "modelversions",
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "m"},
            "spec": {
                "model": "m",
                "version": "1",
                "artifact": {"uri": "s3://models/m.onnx", "sha256": "a" * 64},
            },
        },
    )
    read = kube.get("driftline.io/v1alpha1", "ModelVersion", NAMESPACE, "m")
    stale = read["metadata"]["resourceVersion"]
    kube.patch_status(
        "driftline.io/v1alpha1",
        "ModelVersion",
        NAMESPACE,
        "m",
        {"phase": "Verifying"},
        resource_version=stale,
    )
    with pytest.raises(KubeError) as raised:
        kube.patch_status(
            "driftline.io/v1alpha1",
            "ModelVersion",
            NAMESPACE,
            "m",
            {"phase": "Ready"},
            resource_version=stale,
        )
    assert raised.value.status == 409 and raised.value.retryable
    assert cluster.status("modelversions", "m")["phase"] == "Verifying"


@pytest.mark.parametrize(("kind", "status"), [(429, 429), (500, 500), (409, 409)])
def test_injected_errors_become_retryable_kube_errors(api, kube, kind, status):
    api.call(lambda: api.faults.add(Fault(kind=kind, resource="services", times=1)))
    with pytest.raises(KubeError) as raised:
        kube.apply(service_body())
    assert raised.value.status == status
    assert raised.value.retryable
    # Retried soon: a conflict at once, throttling and server errors after a short backoff.
    assert retry_delay(raised.value, 0) <= 1.0
    kube.apply(service_body())  # the next attempt goes through


def test_no_answer_is_retryable(api):
    kube = Kube(api.api_client(), timeout=(1.0, 0.5))
    api.call(
        lambda: api.faults.add(Fault(kind="timeout", resource="services", times=1, hang_seconds=3))
    )
    with pytest.raises(KubeError) as raised:
        kube.apply(service_body())
    assert raised.value.status == 0 and raised.value.retryable
    assert reason_for(raised.value) == "ApiUnavailable"


@pytest.mark.parametrize(
    ("status", "reason"), [(422, "InvalidObject"), (403, "Forbidden"), (400, "BadRequest")]
)
def test_errors_that_retrying_cannot_fix_are_permanent(status, reason):
    error = KubeError(status, "x", "y", "apply Deployment ml/a")
    assert not error.retryable
    assert reason_for(error) == reason
    # Retrying the same request cannot help, but the cause (RBAC, a refused object) may be
    # fixed outside the resource: tried again with a backoff that grows to the longest.
    assert retry_delay(error, 3) >= 4.0
    assert retry_delay(error, 30) >= MAX_BACKOFF_SECONDS / 2


def test_backoff_grows_and_is_bounded():
    assert 0.5 <= backoff_seconds(0) <= 1.0
    assert 4.0 <= backoff_seconds(3) <= 8.0
    assert 30.0 <= backoff_seconds(50) <= 60.0


def test_resource_paths():
    assert (
        resource_path("apps/v1", "Deployment", "ml", "a")
        == "/apis/apps/v1/namespaces/ml/deployments/a"
    )
    assert resource_path("v1", "Service", "ml") == "/api/v1/namespaces/ml/services"
    with pytest.raises(ValueError, match="does not manage ConfigMap"):
        resource_path("v1", "ConfigMap", "ml")


def test_merge_patch():
    old = {
        "phase": "A",
        "message": "m",
        "tracks": {"stable": {"r": 1}, "canary": {"r": 1}},
        "list": [1],
    }
    new = {"phase": "B", "tracks": {"stable": {"r": 2}}, "list": [1]}
    assert merge_patch(old, new) == {
        "phase": "B",
        "message": None,
        "tracks": {"stable": {"r": 2}, "canary": None},
    }
    assert merge_patch(new, new) == {}


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (0, "NoResponse", kube_errors.Unavailable),
        (500, "InternalError", kube_errors.Unavailable),
        (429, "TooManyRequests", kube_errors.Throttled),
        (409, "Conflict", kube_errors.Conflict),
        (409, "AlreadyExists", kube_errors.AlreadyExists),
        (404, "NotFound", kube_errors.NotFound),
        (422, "Invalid", kube_errors.Invalid),
        (403, "Forbidden", kube_errors.Forbidden),
    ],
)
def test_one_error_class_per_failure_class(status, reason, kind):
    error = KubeError.of(status, reason, "m", "what")
    assert isinstance(error, kind) and error.status == status


def test_no_answer_chains_its_cause(api):
    kube = Kube(api.api_client(), timeout=(1.0, 0.5))
    api.call(
        lambda: api.faults.add(Fault(kind="timeout", resource="services", times=1, hang_seconds=3))
    )
    with pytest.raises(kube_errors.NoAnswer) as raised:
        kube.get("v1", "Service", NAMESPACE, "x")
    assert raised.value.__cause__ is not None


def test_create_refuses_a_taken_name_and_delete_respects_the_uid(kube):
    created = kube.create(service_body("taken"))
    with pytest.raises(kube_errors.AlreadyExists):
        kube.create(service_body("taken"))
    # A delete aimed at another object of that name leaves this one alone.
    assert kube.delete("v1", "Service", NAMESPACE, "taken", uid="not-its-uid") is False
    assert kube.get("v1", "Service", NAMESPACE, "taken") is not None
    assert kube.delete("v1", "Service", NAMESPACE, "taken", uid=created["metadata"]["uid"])
