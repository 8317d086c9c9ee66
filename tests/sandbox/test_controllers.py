"""The Deployment and Job controllers' decisions (pure)."""

from __future__ import annotations

from typing import Any

from driftline.sandbox.controllers import (
    TEMPLATE_HASH,
    owned_by,
    plan_deployment,
    plan_job,
    pod_for,
    template_hash,
)

TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}
NEW = template_hash(TEMPLATE)


def deployment(replicas: int, template: dict[str, Any] = TEMPLATE) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "namespace": "ns", "uid": "uid-d", "generation": 4},
        "spec": {"replicas": replicas, "template": template},
    }


def pod(name: str, hash_: str = NEW, ready: bool = True, created: str = "t1") -> dict[str, Any]:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return {
        "metadata": {"name": name, "labels": {TEMPLATE_HASH: hash_}, "creationTimestamp": created},
        "status": {"phase": "Running", "conditions": [condition]},
    }


def test_a_new_deployment_creates_its_replicas_and_reports_none_ready():
    plan = plan_deployment(deployment(3), [], "now")
    assert plan.create == 3 and plan.delete == ()
    assert plan.status["observedGeneration"] == 4
    assert plan.status["readyReplicas"] == 0
    assert plan.status["unavailableReplicas"] == 3
    available = plan.status["conditions"][0]
    assert (available["type"], available["status"]) == ("Available", "False")


def test_ready_replicas_are_reported_as_available():
    plan = plan_deployment(deployment(2), [pod("a"), pod("b")], "now")
    assert plan.create == 0 and plan.delete == ()
    counts = {k: plan.status[k] for k in ("replicas", "updatedReplicas", "readyReplicas")}
    assert counts == {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}
    assert plan.status["conditions"][0]["status"] == "True"
    assert plan.status["conditions"][1]["reason"] == "NewReplicaSetAvailable"


def test_scale_down_removes_the_not_ready_then_the_newest():
    pods = [pod("old", created="t1"), pod("new", created="t3"), pod("sick", ready=False)]
    plan = plan_deployment(deployment(1), pods, "now")
    assert set(plan.delete) == {"sick", "new"}
    assert plan.create == 0


def test_a_template_change_surges_and_keeps_old_pods_until_new_ones_are_ready():
    old_hash = "0ld"
    old = [pod("o1", old_hash, created="t1"), pod("o2", old_hash, created="t2")]
    plan = plan_deployment(deployment(2), old, "now")
    assert plan.create == 2 and plan.delete == ()  # maxUnavailable 0
    one_ready = [*old, pod("n1"), pod("n2", ready=False)]
    plan = plan_deployment(deployment(2), one_ready, "now")
    assert plan.create == 0 and plan.delete == ("o1",)  # the oldest goes first
    assert plan.status["updatedReplicas"] == 2
    assert plan.status["conditions"][1]["reason"] == "ReplicaSetUpdated"
    all_ready = [*old, pod("n1"), pod("n2")]
    assert set(plan_deployment(deployment(2), all_ready, "now").delete) == {"o1", "o2"}


def test_old_pods_that_are_not_ready_go_at_once():
    pods = [pod("o1", "0ld", ready=False)]
    plan = plan_deployment(deployment(1), pods, "now")
    assert plan.delete == ("o1",) and plan.create == 1


def test_pods_are_bound_to_the_sandbox_node_and_owned_by_their_controller():
    created = pod_for(deployment(1), "Deployment", "apps/v1", "d-abc", {TEMPLATE_HASH: NEW})
    assert created["spec"]["nodeName"] == "sandbox"
    assert created["metadata"]["name"].startswith("d-abc-")
    assert created["metadata"]["labels"] == {"app": "a", TEMPLATE_HASH: NEW}
    assert owned_by(created, "uid-d") and not owned_by(created, "uid-x")


def job(backoff_limit: int = 1, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "uid-j"},
        "spec": {"backoffLimit": backoff_limit, "template": TEMPLATE},
        "status": {"conditions": conditions} if conditions else {},
    }


def job_pod(phase: str) -> dict[str, Any]:
    return {"metadata": {"name": f"p-{phase}"}, "status": {"phase": phase}}


def test_a_job_runs_one_pod_at_a_time():
    plan = plan_job(job(), [], "now")
    assert plan.create is True
    assert plan.status is not None and plan.status["startTime"] == "now"
    assert plan_job(job(), [job_pod("Running")], "now").create is False


def test_a_job_completes_on_a_success():
    plan = plan_job(job(), [job_pod("Failed"), job_pod("Succeeded")], "now")
    assert plan.create is False
    assert plan.status is not None
    kinds = [(c["type"], c["status"]) for c in plan.status["conditions"]]
    assert ("Complete", "True") in kinds
    assert plan.status["succeeded"] == 1 and plan.status["failed"] == 1


def test_a_job_retries_up_to_its_backoff_limit_then_fails():
    assert plan_job(job(backoff_limit=1), [job_pod("Failed")], "now").create is True
    plan = plan_job(job(backoff_limit=1), [job_pod("Failed"), job_pod("Failed")], "now")
    assert plan.create is False
    assert plan.status is not None
    failed = [c for c in plan.status["conditions"] if c["type"] == "Failed"]
    assert failed[0]["reason"] == "BackoffLimitExceeded"


def test_a_finished_job_is_left_alone():
    done = job(conditions=[{"type": "Complete", "status": "True"}])
    assert plan_job(done, [], "now").create is False
    assert plan_job(done, [], "now").status is None
