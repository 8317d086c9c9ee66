"""Canary and blue-green rollouts with the real operator on the local Kubernetes API:
steps, pauses, manual requests, abort, retry, supersede, the progress deadline."""

from __future__ import annotations

import json
import uuid
from typing import Any

from operator_harness import NAMESPACE, model_deployment, verified_version, wait_for

VERSIONS = ("churn-a", "churn-b", "churn-c")


def versions(cluster, tmp_path, model_file) -> None:
    for name in VERSIONS:
        verified_version(cluster, tmp_path, name, model_file)
    for name in VERSIONS:
        wait_for(
            lambda name=name: cluster.status("modelversions", name).get("phase") == "Ready",
            what=f"{name} Ready",
        )


def canary(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Canary", "canary": {"steps": list(steps)}}


def status(cluster, name: str = "churn") -> dict[str, Any]:
    return cluster.status("modeldeployments", name)


def deployments(cluster) -> dict[str, Any]:
    return {d.metadata.name: d for d in cluster.deployments()}


def request(cluster, action: str, name: str = "churn") -> str:
    """What `driftline rollout ACTION` writes: an annotation, never the spec."""
    request_id = uuid.uuid4().hex
    cluster.patch(
        "modeldeployments",
        name,
        {
            "metadata": {
                "annotations": {
                    "driftline.io/rollout-request": json.dumps(
                        {"id": request_id, "action": action, "requestedAt": "2026-12-01T00:00:00Z"}
                    )
                }
            }
        },
    )
    wait_for(lambda: status(cluster, name).get("handledRequest") == request_id, what=action)
    return request_id


def healthy_on(cluster, version: str, name: str = "churn") -> bool:
    s = status(cluster, name)
    return (
        s.get("phase") == "Healthy"
        and s.get("stableVersion") == version
        and not s.get("canaryVersion")
        and not s.get("previewVersion")
    )


def start(cluster, tmp_path, model_file, strategy: dict[str, Any], replicas: int = 4) -> None:
    versions(cluster, tmp_path, model_file)
    cluster.create(
        "modeldeployments",
        model_deployment("churn", "churn-a", replicas=replicas, strategy=strategy),
    )
    wait_for(lambda: healthy_on(cluster, "churn-a"), what="Healthy on a")


def move_to(cluster, version: str) -> None:
    cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": version}})


def test_a_canary_goes_through_every_step_to_promoted(cluster, operator, model_file, tmp_path):
    start(
        cluster,
        tmp_path,
        model_file,
        # Pauses long enough for the test's polling to see each step on a loaded machine.
        canary(
            {"weight": 25, "pauseSeconds": 3}, {"weight": 50, "pauseSeconds": 3}, {"weight": 100}
        ),
    )
    move_to(cluster, "churn-b")
    seen: list[tuple[int, int]] = []
    canary_sizes: set[tuple[int, int]] = set()

    def track() -> bool:
        s = status(cluster)
        if s.get("canaryVersion") == "churn-b":
            seen.append((s.get("currentStep", -1), s.get("canaryWeight", 0)))
        running = deployments(cluster)
        if "churn-canary" in running:
            canary_sizes.add(
                (running["churn-canary"].spec.replicas, running["churn-stable"].spec.replicas)
            )
        return healthy_on(cluster, "churn-b")

    wait_for(track, timeout=60, what="promoted to b")
    weights = [w for _, w in seen]
    assert weights == sorted(weights), seen  # never decreases within the rollout
    assert {25, 50} <= set(weights)
    # By replica ratio over 4 replicas: 1 canary beside 3 stable at 25%, 2 and 2 at 50%.
    assert {(1, 3), (2, 2)} <= canary_sizes, canary_sizes
    final = status(cluster)
    assert final["history"][0]["version"] == "churn-b"
    assert final["history"][0]["outcome"] == "Promoted"
    assert "churn-canary" not in deployments(cluster)
    reasons = {e.reason for e in cluster.events_for("churn")}
    assert {"RolloutStarted", "RolloutCompleted"} <= reasons


def test_a_step_waits_for_a_manual_promote_and_spec_paused_holds_it(
    cluster, operator, model_file, tmp_path
):
    start(cluster, tmp_path, model_file, canary({"weight": 50, "pauseSeconds": 0}, {"weight": 100}))
    move_to(cluster, "churn-b")
    wait_for(
        lambda: (
            status(cluster).get("canaryVersion") == "churn-b"
            and cluster.condition("modeldeployments", "churn", "Progressing")[1] == "Paused"
        ),
        what="waiting for a promote at step 0",
    )
    cluster.patch("modeldeployments", "churn", {"spec": {"paused": True}})
    wait_for(lambda: status(cluster).get("phase") == "Paused", what="phase Paused")
    spec_before = cluster.get("modeldeployments", "churn")["spec"]
    cluster.patch("modeldeployments", "churn", {"spec": {"paused": False}})
    request(cluster, "promote")
    wait_for(lambda: healthy_on(cluster, "churn-b"), timeout=60, what="promoted")
    # The request never touched the spec.
    assert cluster.get("modeldeployments", "churn")["spec"] == {**spec_before, "paused": False}


def test_abort_then_retry_then_a_new_version(cluster, operator, model_file, tmp_path):
    start(cluster, tmp_path, model_file, canary({"weight": 50, "pauseSeconds": 0}, {"weight": 100}))
    move_to(cluster, "churn-b")
    wait_for(lambda: "churn-canary" in deployments(cluster), what="canary running")
    request(cluster, "abort")
    wait_for(
        lambda: (
            status(cluster).get("abortedVersion") == "churn-b"
            and "churn-canary" not in deployments(cluster)
        ),
        what="aborted",
    )
    s = status(cluster)
    assert s["stableVersion"] == "churn-a" and s.get("canaryWeight", 0) == 0
    assert s["history"][0]["outcome"] == "Aborted"
    assert cluster.condition("modeldeployments", "churn", "UpToDate") == (
        "False",
        "RolloutAborted",
    )
    # Stays aborted (the spec still says b) until a retry...
    request(cluster, "retry")
    wait_for(lambda: status(cluster).get("canaryVersion") == "churn-b", what="retried")
    assert not status(cluster).get("abortedVersion")
    request(cluster, "abort")
    # ...or the spec names another version.
    move_to(cluster, "churn-c")
    wait_for(lambda: status(cluster).get("canaryVersion") == "churn-c", what="c rolling out")
    request(cluster, "promote-full")
    wait_for(lambda: healthy_on(cluster, "churn-c"), timeout=60, what="promoted to c")


def test_a_new_version_mid_rollout_supersedes_it(cluster, operator, model_file, tmp_path):
    start(cluster, tmp_path, model_file, canary({"weight": 50, "pauseSeconds": 0}, {"weight": 100}))
    move_to(cluster, "churn-b")
    wait_for(lambda: status(cluster).get("canaryVersion") == "churn-b", what="b in flight")
    move_to(cluster, "churn-c")

    def superseded() -> bool:
        s = status(cluster)
        # Stable keeps serving all along.
        assert s.get("stableVersion") == "churn-a"
        return s.get("canaryVersion") == "churn-c" and s.get("currentStep") == 0

    wait_for(superseded, what="c from the first step")
    assert status(cluster)["history"][0] == {
        **status(cluster)["history"][0],
        "version": "churn-b",
        "outcome": "Superseded",
    }


def test_blue_green_previews_switches_and_removes_the_old_track(
    cluster, operator, model_file, tmp_path
):
    start(
        cluster,
        tmp_path,
        model_file,
        # A delay long enough for the test's polling to see the switch on a loaded machine.
        {"type": "BlueGreen", "blueGreen": {"autoPromote": True, "scaleDownDelaySeconds": 5}},
        replicas=2,
    )
    move_to(cluster, "churn-b")

    def service_selects(track: str) -> bool:
        selector = cluster.core.read_namespaced_service("churn", NAMESPACE).spec.selector
        return selector.get("driftline.io/track") == track

    wait_for(lambda: service_selects("preview"), what="traffic switched to the preview")
    assert status(cluster)["activeTrack"] == "preview"
    wait_for(lambda: healthy_on(cluster, "churn-b"), timeout=60, what="promoted to b")
    assert service_selects("stable")
    assert "churn-preview" not in deployments(cluster)
    assert (
        deployments(cluster)["churn-stable"].metadata.annotations["driftline.io/model-version"]
        == "churn-b"
    )


def test_a_canary_whose_pods_never_become_ready_is_aborted(
    api, cluster, operator, model_file, tmp_path
):
    start(cluster, tmp_path, model_file, canary({"weight": 50}, {"weight": 100}))
    api.call(lambda: api.controllers.deployments.never_ready.add("churn-canary"))
    cluster.patch(
        "modeldeployments",
        "churn",
        {"spec": {"modelVersion": "churn-b", "strategy": {"progressDeadlineSeconds": 10}}},
    )
    wait_for(
        lambda: (
            cluster.condition("modeldeployments", "churn", "Degraded")
            == ("True", "ProgressDeadlineExceeded")
        ),
        timeout=60,
        what="the deadline",
    )
    s = status(cluster)
    assert s["abortedVersion"] == "churn-b" and s["stableVersion"] == "churn-a"
    wait_for(lambda: "churn-canary" not in deployments(cluster), what="canary removed")


def test_the_rollout_command_promotes_through_the_real_operator(
    api, cluster, operator, model_file, tmp_path
):
    import os
    import subprocess
    import sys
    from pathlib import Path

    start(cluster, tmp_path, model_file, canary({"weight": 50, "pauseSeconds": 0}, {"weight": 100}))
    move_to(cluster, "churn-b")
    wait_for(lambda: status(cluster).get("canaryVersion") == "churn-b", what="b in flight")
    driftline = Path(sys.executable).with_name("driftline")
    env = {**os.environ, "KUBECONFIG": str(api.kubeconfig_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(driftline), "rollout", *args, "churn", "-n", NAMESPACE, "--timeout", "30"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = run("status")
    assert shown.returncode == 0, shown.stderr
    assert "churn-b" in shown.stdout and "churn-a" in shown.stdout
    promoted = run("promote")
    assert promoted.returncode == 0, promoted.stderr  # waited until the operator acted
    wait_for(lambda: healthy_on(cluster, "churn-b"), timeout=60, what="promoted")


def test_rollouts_killed_at_random_points_end_as_an_uninterrupted_one_does(
    api, cluster, operator, model_file, tmp_path
):
    import random
    import threading

    chance = random.Random(20261202)  # fixed: a failure can be replayed
    versions(cluster, tmp_path, model_file)
    names = [f"md-{i:02d}" for i in range(20)]
    strategy = canary(
        {"weight": 25, "pauseSeconds": 1}, {"weight": 50, "pauseSeconds": 1}, {"weight": 100}
    )
    for name in names:
        cluster.create(
            "modeldeployments", model_deployment(name, "churn-a", replicas=4, strategy=strategy)
        )
    for name in names:
        wait_for(lambda name=name: healthy_on(cluster, "churn-a", name), timeout=90, what=name)
    for name in names:
        cluster.patch("modeldeployments", name, {"spec": {"modelVersion": "churn-b"}})
    pause = threading.Event()
    for _ in range(4):
        # A random moment to kill at (fault injection, not synchronisation).
        pause.wait(chance.uniform(0.2, 2.0))
        operator.kill()
        operator.start()
    for name in names:
        wait_for(lambda name=name: healthy_on(cluster, "churn-b", name), timeout=180, what=name)

    endings = set()
    for name in names:
        s = status(cluster, name)
        history = [(h["version"], h["outcome"]) for h in s.get("history", [])]
        assert history.count(("churn-b", "Promoted")) == 1, (name, history)
        assert not [h for h in history if h[1] in ("Aborted", "Superseded")], (name, history)
        endings.add((tuple(history), s["stableVersion"], s.get("canaryWeight", 0)))
    assert len(endings) == 1, endings  # every one ended the same way

    # No duplicate and no orphaned object: one stable Deployment, one Service, one budget each.
    running = deployments(cluster)
    assert sorted(running) == sorted(f"{n}-stable" for n in names)
    services = sorted(
        s.metadata.name for s in cluster.core.list_namespaced_service(NAMESPACE).items
    )
    assert services == sorted(names)
    for obj in running.values():
        (owner,) = obj.metadata.owner_references
        assert owner.name in names


def gateway_api_httproute_crd() -> dict[str, Any]:
    """The HTTPRoute CRD with the Gateway API's own v1 schema (tests/fixtures/gateway-api);
    its CEL rules are left out (they validate routes users write, not what this test is
    about, and need CEL libraries beyond the local API's)."""
    from pathlib import Path

    def without_rules(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: without_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"}
        if isinstance(node, list):
            return [without_rules(v) for v in node]
        return node

    schema_file = (
        Path(__file__).parents[1] / "fixtures" / "gateway-api" / "httproute-v1.schema.json"
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {
                "kind": "HTTPRoute",
                "listKind": "HTTPRouteList",
                "plural": "httproutes",
                "singular": "httproute",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": without_rules(json.loads(schema_file.read_text()))
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def test_an_httproute_carries_the_canary_weights_through_the_real_operator(
    api, cluster, operator, model_file, tmp_path
):
    import kubernetes

    client = api.api_client()
    kubernetes.client.ApiextensionsV1Api(client).create_custom_resource_definition(
        gateway_api_httproute_crd()
    )
    versions(cluster, tmp_path, model_file)
    body = model_deployment(
        "churn",
        "churn-a",
        replicas=4,
        # Pauses long enough for the test to see each step's route under load.
        strategy=canary(
            {"weight": 25, "pauseSeconds": 3}, {"weight": 50, "pauseSeconds": 3}, {"weight": 100}
        ),
        traffic={"httpRoute": [{"name": "public", "namespace": "gateways"}]},
    )
    cluster.create("modeldeployments", body)
    routes = kubernetes.client.CustomObjectsApi(client)

    def backends() -> dict[str, int]:
        try:
            route = routes.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", "churn"
            )
        except kubernetes.client.ApiException:
            return {}
        refs = route["spec"]["rules"][0]["backendRefs"]
        return {ref["name"].rsplit("--", 1)[-1]: ref["weight"] for ref in refs}

    wait_for(lambda: healthy_on(cluster, "churn-a") and backends() == {"stable": 100}, what="route")
    move_to(cluster, "churn-b")
    seen: list[dict[str, int]] = []

    def follow() -> bool:
        current = backends()
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        return healthy_on(cluster, "churn-b") and current == {"stable": 100}

    wait_for(follow, timeout=60, what="promoted with the route back on stable")
    canary_weights = [w.get("canary", 0) for w in seen]
    assert {25, 50} <= set(canary_weights), seen
    for weights in seen:
        assert sum(weights.values()) == 100, seen
