"""No single API answer on a watch or a list may end the operator (issue 12).

kopf retries 5xx, 403 and 429 on its requests, but any other 4xx on the list or watch of a
resource used to escape its watch stream, fail the "watcher for ..." task and with it the
"multidimensional multitasker": the whole operator exited with status 1.

One operator process runs through every status: each case fails the next watch request and
the next list request of one resource once, then forgets the watch history and ends the open
watch streams server-side, so that the operator has to watch again and, told "410 Gone" (or
failing), list again. It then shows that the operator is alive, logged a warning naming the
resource and the status, and still reconciles an object created after the fault. A second
run deletes and re-creates a CRD, whose watch gets a real 404 in between.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import kubernetes
import yaml
from operator_harness import (
    NAMESPACE,
    REPO,
    Cluster,
    ModelFile,
    OperatorProcess,
    model_deployment,
    wait_for,
)
from operator_harness import verified_version as create_verified_version

from driftline.apiserver.faults import Fault, FaultKind
from tests.apiserver_support import RunningApiServer

MODELDEPLOYMENTS = ("driftline.io", "v1alpha1", "modeldeployments")
CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")

# 403 is retried by kopf's own request loop, but a watch that was allowed before and is
# refused now is part of the same promise, so it stays in the list.
STATUSES: tuple[FaultKind, ...] = (409, 400, 403, 404, 410, 422)


def failed_tasks(log: str) -> list[str]:
    """kopf's "<task> has failed" lines: a watcher or a root task died (the process follows)."""
    return [line for line in log.splitlines() if " ERROR kopf." in line and " has failed: " in line]


def wait_alive(
    operator: OperatorProcess, check: Callable[[], Any], *, what: str, timeout: float = 45.0
) -> Any:
    """wait_for, failing at once if the operator exited or one of kopf's tasks has failed."""

    def alive_and_checked() -> Any:
        assert operator.process is not None
        code, log = operator.process.poll(), operator.log()
        if code is not None or failed_tasks(log):
            state = "a kopf task has failed" if code is None else f"the operator exited {code}"
            tail = "\n".join(log.splitlines()[-15:])
            raise AssertionError(f"{state} while waiting for {what}:\n{tail}")
        return check()

    return wait_for(alive_and_checked, timeout=timeout, what=what)


def fail_next_watch_and_list(
    api: RunningApiServer, kind: FaultKind, resource: tuple[str, str, str]
) -> list[Fault]:
    """One failed watch and one failed list of `resource`; make the operator watch and list."""
    group, version, plural = resource
    faults = [
        Fault(kind=kind, verbs=frozenset({verb}), resource=f"{plural}.{group}", times=1)
        for verb in ("watch", "list")
    ]

    def inject() -> None:
        for fault in faults:
            api.faults.add(fault)
        # One more write, then forget all history: the operator's resourceVersion for this
        # resource (from an event or a bookmark) is now older than the history, so watching
        # again gets "410 Gone" and kopf lists again, even where it retried the failed watch
        # itself (it retries 403 and 429). All of it on the server's loop, so nothing between.
        api.cluster.create(
            api.cluster.resource("", "v1", "configmaps"),
            NAMESPACE,
            {"metadata": {"generateName": "history-marker-"}},
        )
        api.cluster.store.compact()
        api.cluster.store.close_watchers(api.cluster.resource(group, version, plural).storage_key)

    api.call(inject)
    return faults


def all_fired(api: RunningApiServer, faults: list[Fault]) -> bool:
    return api.call(lambda: all(fault.fired >= 1 for fault in faults))


def logged_failure(log: str, plural: str, status: int) -> bool:
    """A warning (ours) or an error (kopf's own retry of 403 and 429) naming both."""
    return any(
        plural in line and (f"failed with {status} " in line or f"status={status})" in line)
        for line in log.splitlines()
        if " WARNING " in line or " ERROR " in line
    )


def healthy(cluster: Cluster, name: str) -> bool:
    return cluster.status("modeldeployments", name).get("phase") == "Healthy"


def reconciles_a_new_deployment(operator: OperatorProcess, cluster: Cluster, name: str) -> None:
    cluster.create("modeldeployments", model_deployment(name, "churn-v1", replicas=1))
    wait_alive(operator, lambda: healthy(cluster, name), what=f"{name} Healthy")


def test_errors_on_watch_and_list_are_survived(
    api: RunningApiServer,
    cluster: Cluster,
    operator: OperatorProcess,
    model_file: ModelFile,
    tmp_path: Any,
) -> None:
    create_verified_version(cluster, tmp_path, "churn-v1", model_file)
    wait_alive(
        operator,
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Ready",
        what="ModelVersion Ready",
    )
    reconciles_a_new_deployment(operator, cluster, "before")

    for status in STATUSES:
        faults = fail_next_watch_and_list(api, status, MODELDEPLOYMENTS)
        wait_alive(
            operator, lambda faults=faults: all_fired(api, faults), what=f"{status} on watch+list"
        )
        reconciles_a_new_deployment(operator, cluster, f"after-{status}")
        assert logged_failure(operator.log(), "modeldeployments", status)

    # A fault that persists for three requests in a row: the operator backs off and recovers.
    persistent = Fault(
        kind=409, verbs=frozenset({"watch", "list"}), resource="modeldeployments.driftline.io"
    )
    persistent.times = 3

    def inject_persistent() -> None:
        api.faults.add(persistent)
        api.cluster.store.close_watchers(api.cluster.resource(*MODELDEPLOYMENTS).storage_key)

    api.call(inject_persistent)
    wait_alive(operator, lambda: all_fired(api, [persistent]), what="409 three times in a row")
    reconciles_a_new_deployment(operator, cluster, "after-persistent-409")
    assert "(failure 3 in a row)" in operator.log()
    # Each failed request counted once: 2 in the first 409 case, 3 here.
    assert re.search(
        r'driftline_operator_watch_errors_total\{resource="modeldeployments.v1alpha1.driftline.io",'
        r'status="409"\} 5\.0',
        operator.metrics(),
    )

    # The CRD watch (kopf's resource observer) is a root task of its own: the same holds there.
    faults = fail_next_watch_and_list(api, 409, CRDS)
    wait_alive(operator, lambda: all_fired(api, faults), what="409 on the CRD watch+list")
    reconciles_a_new_deployment(operator, cluster, "after-crd-409")
    assert logged_failure(operator.log(), "customresourcedefinitions", 409)


def test_a_crd_deleted_and_recreated_is_watched_again(
    api: RunningApiServer,
    cluster: Cluster,
    operator: OperatorProcess,
    model_file: ModelFile,
    tmp_path: Any,
) -> None:
    """Deleting a CRD ends its watch and the next one gets 404 before kopf's observer notices."""
    extensions = kubernetes.client.ApiextensionsV1Api(api.api_client())
    crd = yaml.safe_load((REPO / "crds" / "driftpolicies.driftline.io.yaml").read_text())
    create_verified_version(cluster, tmp_path, "churn-v1", model_file)
    reconciles_a_new_deployment(operator, cluster, "churn")

    extensions.delete_custom_resource_definition(crd["metadata"]["name"])
    wait_alive(
        operator,
        lambda: (
            crd["metadata"]["name"]
            not in {
                item.metadata.name for item in extensions.list_custom_resource_definition().items
            }
        ),
        what="the CRD gone",
    )
    extensions.create_custom_resource_definition(crd)

    # The operator watches DriftPolicies again: a new policy adds the sidecar.
    cluster.create(
        "driftpolicies",
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "churn-drift"},
            "spec": {"targetRef": {"name": "churn"}},
        },
    )

    def containers() -> list[str]:
        deployment = cluster.apps.read_namespaced_deployment("churn-stable", NAMESPACE)
        return [container.name for container in deployment.spec.template.spec.containers]

    wait_alive(operator, lambda: containers() == ["server", "drift-evaluator"], what="sidecar")
