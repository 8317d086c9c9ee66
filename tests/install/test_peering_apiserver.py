"""Two operator replicas as the chart runs them (`--peering`, a pod name each) against the
local Kubernetes API with the chart's CRDs and peering object: both keep alive in the
ClusterKopfPeering, the lower priority stands by, and it takes over when the working one
stops."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from driftline.api.manifests import load_documents
from tests.apiserver_support import RunningApiServer, running_apiserver
from tests.install.helm_support import CHART, ROOT
from tests.support import free_port, wait_until

PEERING = "driftline"
RESUMING = "Resuming operations after the pause"


class Replica:
    """`python -m driftline.operator --peering driftline` as one pod of the Deployment."""

    def __init__(self, name: str, priority: int, kubeconfig: Path, log_dir: Path) -> None:
        self.name, self.priority = name, priority
        self.log_path = log_dir / f"{name}.log"
        environment = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_ID": name}
        environment.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftline.operator",
                    "--bind=127.0.0.1",
                    f"--metrics-port={free_port()}",
                    f"--liveness-port={free_port()}",
                    f"--peering={PEERING}",
                    f"--priority={priority}",
                ],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApiServer]:
    with running_apiserver(kubeconfig_path=tmp_path / "kubeconfig", crds=CHART / "crds") as running:
        yield running


def test_the_highest_priority_replica_works_and_the_other_takes_over(
    api: RunningApiServer, tmp_path: Path
):
    client = api.api_client()
    custom = kubernetes.client.CustomObjectsApi(client)
    # what the chart's peering.yaml creates for replicas > 1
    custom.create_cluster_custom_object(
        "kopf.dev",
        "v1",
        "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}},
    )

    def keepalives() -> dict[str, Any]:
        body = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", PEERING)
        status: dict[str, Any] = body.get("status") or {}
        return status

    assert api.kubeconfig_path is not None
    # kopf starts every peered replica paused until the peering says it may work
    low = Replica("driftline-operator-b", 10, api.kubeconfig_path, tmp_path)
    high: Replica | None = None
    try:
        wait_until(lambda: low.log().count(RESUMING) == 1, 60, what="the lone replica to work")
        high = Replica("driftline-operator-a", 20, api.kubeconfig_path, tmp_path)
        wait_until(
            lambda: (
                {k: v.get("priority") for k, v in keepalives().items()}
                == {high.name: 20, low.name: 10}
            ),
            60,
            what="both replicas' keep-alives in the ClusterKopfPeering",
        )
        wait_until(lambda: RESUMING in high.log(), 60, what="the high replica to work")
        wait_until(
            lambda: "Pausing operations in favour of" in low.log(),
            60,
            what="the low replica to stand by for the high one",
        )
        assert "Pausing" not in high.log()

        high.stop()  # as when its pod is deleted: it takes its keep-alive out on the way
        wait_until(lambda: high.name not in keepalives(), 30, what="the stopped replica to leave")
        wait_until(
            lambda: low.log().count(RESUMING) == 2, 60, what="the standby replica to take over"
        )
        # and it works: a new ModelVersion gets a status from it, the only replica left
        kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": "ml"}})
        version = next(
            iter(load_documents(ROOT / "examples" / "cpu-canary" / "modelversions.yaml"))
        )
        custom.create_namespaced_custom_object(
            "driftline.io", "v1alpha1", "ml", "modelversions", version
        )
        wait_until(
            lambda: (
                custom.get_namespaced_custom_object(
                    "driftline.io", "v1alpha1", "ml", "modelversions", version["metadata"]["name"]
                ).get("status")
                or {}
            ).get("phase"),
            60,
            what="the ModelVersion reconciled by the standby replica",
        )
    finally:
        for replica in (high, low):
            if replica is not None:
                replica.stop()
        client.close()
