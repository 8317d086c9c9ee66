"""Fault injection: chosen requests fail with a 4xx or 5xx status, or a timeout."""

from __future__ import annotations

import kubernetes
import pytest
import urllib3

from driftline.apiserver.faults import Fault, FaultInjector

ApiException = kubernetes.client.ApiException


def configmap(name: str) -> dict:
    return {"metadata": {"name": name}}


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        (400, 400, "BadRequest"),
        (403, 403, "Forbidden"),
        (404, 404, "NotFound"),
        (409, 409, "Conflict"),
        (410, 410, "Expired"),
        (422, 422, "Invalid"),
        (429, 429, "TooManyRequests"),
        (500, 500, "InternalError"),
    ],
)
def test_injected_status_for_chosen_verb_and_resource(server, core, kind, code, reason):
    core.create_namespaced_config_map("default", configmap("a"))
    server.faults.inject(kind, verbs=frozenset({"patch"}), resource="configmaps")
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    assert caught.value.status == code
    assert reason in caught.value.body
    assert (
        core.read_namespaced_config_map("a", "default").data is None
    )  # the failed write changed nothing
    core.create_namespaced_config_map("default", configmap("b"))  # other verbs are unaffected


def test_fault_by_name_only(server, core):
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    server.faults.inject(500, name="a")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("a", "default")
    assert core.read_namespaced_config_map("b", "default").metadata.name == "b"


def test_fault_by_name_hits_the_create_of_that_name(server, core):
    server.faults.inject(500, verbs=frozenset({"create"}), name="a")
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("a"))
    assert caught.value.status == 500
    assert core.create_namespaced_config_map("default", configmap("b")).metadata.name == "b"


def test_429_carries_retry_after(server, core):
    server.faults.inject(429, verbs=frozenset({"list"}))
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default")
    assert caught.value.headers["Retry-After"] == "1"


def test_fault_limited_by_count(server, core):
    server.faults.inject(500, verbs=frozenset({"create"}), times=2)
    for name in ("a", "b"):
        with pytest.raises(ApiException):
            core.create_namespaced_config_map("default", configmap(name))
    core.create_namespaced_config_map("default", configmap("c"))


def test_fault_limited_by_period(server, core):
    fault = server.faults.inject(500, verbs=frozenset({"get"}), duration=3600)
    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("a", "default")
    fault.started -= 3600  # as if the period had passed
    assert core.read_namespaced_config_map("a", "default").metadata.name == "a"


def test_timeout_fault_holds_the_request(server, core):
    server.faults.inject("timeout", verbs=frozenset({"get"}), hang_seconds=2)
    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)):
        core.read_namespaced_config_map("a", "default", _request_timeout=(5, 0.3))
    server.faults.clear()
    assert core.read_namespaced_config_map("a", "default").metadata.name == "a"


def test_timeout_fault_answers_504_to_a_patient_client(server, core):
    server.faults.inject("timeout", verbs=frozenset({"list"}), hang_seconds=0.2)
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default")
    assert caught.value.status == 504


def test_rate_selects_a_fraction_of_requests():
    injector = FaultInjector(seed=7)
    injector.inject(500, rate=0.25)
    hits = sum(injector.pick("get", "pods", "", "default", "p") is not None for _ in range(4000))
    assert 800 < hits < 1200


def test_bad_fault_definitions_are_rejected():
    with pytest.raises(ValueError, match="fault kind"):
        Fault(418)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        Fault(500, rate=1.5)
    with pytest.raises(ValueError, match="unknown verbs"):
        Fault(500, verbs=frozenset({"explode"}))
