"""The controller stand-ins: Deployment readiness, Job outcomes with pods, Service IPs."""

from __future__ import annotations

import ipaddress

import kubernetes
from conftest import wait_for

ApiException = kubernetes.client.ApiException


def deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }


def job(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "train", "image": "trainer:1"}],
                }
            },
        },
    }


def test_deployment_becomes_available_and_observes_each_generation(apps):
    apps.create_namespaced_deployment("default", deployment("d", replicas=2))
    status = wait_for(
        lambda: (
            (s := apps.read_namespaced_deployment("d", "default").status).observed_generation == 1
            and s
        ),
        message="rollout",
    )
    assert (
        status.replicas,
        status.ready_replicas,
        status.available_replicas,
        status.updated_replicas,
    ) == (2, 2, 2, 2)
    assert {c.type: c.status for c in status.conditions} == {
        "Available": "True",
        "Progressing": "True",
    }
    apps.patch_namespaced_deployment("d", "default", {"spec": {"replicas": 3}})
    status = wait_for(
        lambda: (
            (s := apps.read_namespaced_deployment("d", "default").status).observed_generation == 2
            and s
        ),
        message="second rollout",
    )
    assert status.ready_replicas == 3


def test_deployment_stand_in_can_report_unready(server, apps):
    server.controllers.deployments.ready = False
    apps.create_namespaced_deployment("default", deployment("d"))
    status = wait_for(
        lambda: (
            (s := apps.read_namespaced_deployment("d", "default").status).observed_generation == 1
            and s
        ),
        message="status",
    )
    assert not status.ready_replicas and not status.available_replicas
    assert {c.type: c.status for c in status.conditions}["Available"] == "False"


def test_deployment_stand_in_can_keep_one_deployment_unready(server, apps):
    server.controllers.deployments.never_ready.add("stuck")
    for name in ("stuck", "fine"):
        apps.create_namespaced_deployment("default", deployment(name))
    statuses = {
        name: wait_for(
            lambda name=name: (
                (s := apps.read_namespaced_deployment(name, "default").status).observed_generation
                == 1
                and s
            ),
            message=name,
        )
        for name in ("stuck", "fine")
    }
    assert not statuses["stuck"].ready_replicas
    assert statuses["fine"].ready_replicas == statuses["fine"].replicas


def test_deployment_stand_in_switched_off_leaves_status_alone(server, apps):
    server.controllers.deployments.enabled = False
    apps.create_namespaced_deployment("default", deployment("d"))
    server.controllers.deployments.enabled = True
    apps.create_namespaced_deployment("default", deployment("witness"))
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("witness", "default").status.observed_generation == 1
        ),
        message="witness",
    )
    assert apps.read_namespaced_deployment("d", "default").status is None


def finished(batch, name: str):
    status = batch.read_namespaced_job(name, "default").status
    done = {c.type for c in status.conditions or [] if c.status == "True"} & {"Complete", "Failed"}
    return status if done else None


def test_job_succeeds_with_a_pod_and_termination_message(server, core):
    batch = kubernetes.client.BatchV1Api(core.api_client)
    server.controllers.jobs.set_outcome(
        "train", succeed=True, message='{"artifact": "s3://models/new.onnx"}'
    )
    created = batch.create_namespaced_job("default", job("train"))
    status = wait_for(lambda: finished(batch, "train"), message="job finished")
    assert status.succeeded == 1 and status.completion_time is not None
    pods = core.list_namespaced_pod(
        "default", label_selector="batch.kubernetes.io/job-name=train"
    ).items
    assert len(pods) == 1
    assert pods[0].metadata.owner_references[0].uid == created.metadata.uid
    assert pods[0].status.phase == "Succeeded"
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert (
        terminated.exit_code == 0 and terminated.message == '{"artifact": "s3://models/new.onnx"}'
    )


def test_job_fails_as_configured(server, core):
    batch = kubernetes.client.BatchV1Api(core.api_client)
    server.controllers.jobs.set_outcome("train", succeed=False, message="out of memory")
    batch.create_namespaced_job("default", job("train"))
    status = wait_for(lambda: finished(batch, "train"), message="job finished")
    assert status.failed == 1
    assert "Failed" in {c.type for c in status.conditions}
    pod = core.list_namespaced_pod("default", label_selector="job-name=train").items[0]
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.message == "out of memory"


def test_deleting_a_job_collects_its_pod(server, core):
    batch = kubernetes.client.BatchV1Api(core.api_client)
    batch.create_namespaced_job("default", job("train"))
    wait_for(lambda: finished(batch, "train"), message="job finished")
    batch.delete_namespaced_job("train", "default", propagation_policy="Background")
    wait_for(lambda: not core.list_namespaced_pod("default").items, message="pod collected")


def test_service_gets_a_cluster_ip(core):
    created = core.create_namespaced_service(
        "default",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}},
    )
    address = ipaddress.ip_address(created.spec.cluster_ip)
    assert address in ipaddress.ip_network("10.96.0.0/12")
    assert created.spec.cluster_ips == [created.spec.cluster_ip]
    other = core.create_namespaced_service(
        "default", {"metadata": {"name": "t"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert other.spec.cluster_ip != created.spec.cluster_ip
    patched = core.patch_namespaced_service(
        "s", "default", {"spec": {"ports": [{"port": 80}, {"port": 81}]}}
    )
    assert patched.spec.cluster_ip == created.spec.cluster_ip
    assert [p.port for p in patched.spec.ports] == [80, 81]


def test_headless_service_keeps_none(core):
    created = core.create_namespaced_service(
        "default",
        {"metadata": {"name": "s"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
    )
    assert created.spec.cluster_ip == "None"


def test_deployment_readiness_waits_for_the_configured_delay(server, apps):
    server.controllers.deployments.ready_delay = 3600  # longer than any test runs
    apps.create_namespaced_deployment("default", deployment("slow"))
    server.controllers.deployments.ready_delay = 0
    apps.create_namespaced_deployment("default", deployment("fast"))
    wait_for(
        lambda: apps.read_namespaced_deployment("fast", "default").status.observed_generation == 1,
        message="fast rollout",
    )
    assert apps.read_namespaced_deployment("slow", "default").status is None


def test_job_outcome_from_annotations(core):
    batch = kubernetes.client.BatchV1Api(core.api_client)
    annotated = job("annotated")
    annotated["metadata"]["annotations"] = {
        "apiserver.driftline.io/job-outcome": "fail",
        "apiserver.driftline.io/termination-message": "bad data",
    }
    batch.create_namespaced_job("default", annotated)
    status = wait_for(lambda: finished(batch, "annotated"), message="job finished")
    assert status.failed == 1
    pod = core.list_namespaced_pod("default", label_selector="job-name=annotated").items[0]
    assert pod.status.container_statuses[0].state.terminated.message == "bad data"
