"""Restarts, injected API errors and isolation: the operator converges regardless."""

from __future__ import annotations

import re

from operator_harness import (
    NAMESPACE,
    model_deployment,
    verified_version,
    wait_for,
)

from driftline.apiserver.faults import Fault
from driftline.handlers.kube import Kube

NAMES = [f"md-{i}" for i in range(8)]


def add_fault(api, **fields):
    return api.call(lambda: api.faults.add(Fault(**fields)))


def clear_faults(api):
    api.call(api.faults.clear)


def healthy(cluster, name):
    return cluster.status("modeldeployments", name).get("phase") == "Healthy"


def contains(desired, live):
    """Every field the operator renders is on the live object (the server adds defaults)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(contains(d, item) for d, item in zip(desired, live, strict=True))
        )
    return desired == live


def test_killed_mid_reconcile_converges_without_duplicates(
    api, cluster, operator, model_file, tmp_path
):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    wait_for(
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Ready",
        what="ModelVersion Ready",
    )
    # Writing Services hangs: the operator gets as far as the Deployments and stalls there.
    # (A child is created with POST the first time, and applied with PATCH afterwards.)
    add_fault(
        api,
        kind="timeout",
        verbs=frozenset({"create", "patch"}),
        resource="services",
        hang_seconds=20,
    )
    for name in NAMES:
        cluster.create("modeldeployments", model_deployment(name, "churn-v1"))
    wait_for(lambda: len(cluster.deployments()) >= 3, what="some Deployments applied")
    assert cluster.core.list_namespaced_service(NAMESPACE).items == []
    operator.kill()

    clear_faults(api)
    operator.start()
    for name in NAMES:
        wait_for(lambda name=name: healthy(cluster, name), what=f"{name} Healthy after restart")

    deployments = cluster.deployments()
    assert sorted(d.metadata.name for d in deployments) == sorted(f"{n}-stable" for n in NAMES)
    services = cluster.core.list_namespaced_service(NAMESPACE).items
    assert sorted(s.metadata.name for s in services) == sorted(NAMES)
    budgets = cluster.policy.list_namespaced_pod_disruption_budget(NAMESPACE).items
    assert sorted(b.metadata.name for b in budgets) == sorted(NAMES)
    for obj in [*deployments, *services, *budgets]:
        assert len(obj.metadata.owner_references) == 1

    # The same objects an uninterrupted operator renders: compare with the pure renderer.
    from driftline.api.modeldeployment import ModelDeployment
    from driftline.api.modelversion import ModelVersion
    from driftline.render.objects import TrackPlan, render_model_deployment
    from driftline.render.settings import RenderSettings

    kube = Kube(api.api_client())
    version = ModelVersion.model_validate(
        kube.get("driftline.io/v1alpha1", "ModelVersion", NAMESPACE, "churn-v1")
    )
    for name in NAMES:
        body = kube.get("driftline.io/v1alpha1", "ModelDeployment", NAMESPACE, name)
        spec = ModelDeployment.model_validate(body).spec
        for desired in render_model_deployment(
            body, spec, [TrackPlan("stable", version, 2)], None, RenderSettings()
        ):
            live = kube.get(
                desired["apiVersion"], desired["kind"], NAMESPACE, desired["metadata"]["name"]
            )
            assert live is not None and contains(desired, live), desired["metadata"]["name"]


def test_injected_api_errors_recover(api, cluster, operator, model_file, tmp_path):
    add_fault(api, kind=500, verbs=frozenset({"create", "patch"}), resource="deployments", times=4)
    add_fault(
        api, kind=429, verbs=frozenset({"get"}), resource="modelversions.driftline.io", times=3
    )
    add_fault(
        api, kind=409, verbs=frozenset({"patch"}), resource="modeldeployments.driftline.io", times=3
    )
    add_fault(
        api,
        kind="timeout",
        verbs=frozenset({"create", "patch"}),
        resource="services",
        times=2,
        hang_seconds=1,
    )
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    for name in NAMES[:3]:
        cluster.create("modeldeployments", model_deployment(name, "churn-v1"))
    for name in NAMES[:3]:
        wait_for(lambda name=name: healthy(cluster, name), timeout=60, what=f"{name} Healthy")
    assert len(cluster.deployments()) == 3

    metrics = operator.metrics()
    retries = re.search(
        r'driftline_operator_reconciles_total\{kind="ModelDeployment",outcome="retry"\} (\S+)',
        metrics,
    )
    assert retries is not None and float(retries.group(1)) >= 1
    assert re.search(
        r'driftline_operator_reconcile_duration_seconds_count\{kind="ModelDeployment"\}', metrics
    )
    assert operator.healthz() == 200


def test_one_failing_resource_does_not_block_the_others(
    api, cluster, operator, model_file, tmp_path
):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    broken = add_fault(
        api,
        kind=500,
        verbs=frozenset({"create", "patch"}),
        resource="deployments",
        name="bad-stable",
    )
    cluster.create("modeldeployments", model_deployment("bad", "churn-v1"))
    for name in ("good-a", "good-b"):
        cluster.create("modeldeployments", model_deployment(name, "churn-v1"))
    for name in ("good-a", "good-b"):
        wait_for(lambda name=name: healthy(cluster, name), what=f"{name} Healthy")
    wait_for(
        lambda: (
            cluster.condition("modeldeployments", "bad", "Reconciled")
            == ("False", "ApiUnavailable")
        ),
        what="the failure reported in status",
    )
    assert cluster.condition("modeldeployments", "bad", "Ready")[0] == "False"

    api.call(lambda: api.faults.remove(broken))
    wait_for(lambda: healthy(cluster, "bad"), timeout=90, what="bad recovers once the API does")
