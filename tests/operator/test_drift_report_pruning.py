"""The operator prunes DriftPolicy reports of serving pods that are gone."""

from __future__ import annotations

from pathlib import Path

from operator_harness import NAMESPACE, Cluster, OperatorProcess, wait_for

from driftline.conditions import now_rfc3339
from driftline.render.labels import server_selector


def report(drifted: bool, consecutive: int) -> dict:
    return {
        "evaluation": {
            # fresh: a stale report no longer counts in the combined verdict anyway
            "time": now_rfc3339(),
            "samples": 500,
            "drifted": drifted,
            "severity": "High" if drifted else "None",
            "features": [{"name": "age", "test": "KolmogorovSmirnov", "drifted": drifted}],
        },
        "consecutiveDrifted": consecutive,
    }


def test_reports_of_gone_pods_are_pruned(
    operator_kubeconfig: Path, cluster: Cluster, tmp_path: Path
) -> None:
    operator = OperatorProcess(
        operator_kubeconfig, tmp_path, extra_env={"DRIFTLINE_DRIFT_PRUNE_SECONDS": "0.5"}
    )
    cluster.create(
        "driftpolicies",
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "churn-drift"},
            "spec": {"targetRef": {"name": "churn"}, "hysteresis": {"consecutiveWindows": 2}},
        },
    )
    for pod in ("churn-stable-live", "unrelated-pod"):
        labels = server_selector("churn") if pod.startswith("churn") else {"app": "other"}
        cluster.core.create_namespaced_pod(
            NAMESPACE,
            {
                "metadata": {"name": pod, "labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        )
    cluster.custom.patch_namespaced_custom_object_status(
        "driftline.io",
        "v1alpha1",
        NAMESPACE,
        "driftpolicies",
        "churn-drift",
        {
            "status": {
                "pods": {
                    "churn-stable-live": report(False, 0),
                    "churn-stable-gone": report(True, 4),
                    "unrelated-pod": report(False, 0),
                },
                "severity": "High",
                "conditions": [
                    {
                        "type": "Drifted",
                        "status": "True",
                        "reason": "FeaturesDrifted",
                        "message": "old",
                        "lastTransitionTime": now_rfc3339(),
                    }
                ],
            }
        },
        _content_type="application/merge-patch+json",
    )
    operator.start()
    try:
        status = wait_for(
            lambda: (
                (s := cluster.status("driftpolicies", "churn-drift"))
                and set(s.get("pods", {})) == {"churn-stable-live"}
                and s
            ),
            what="the gone pod's report to be pruned",
        )
    finally:
        operator.stop()
    assert status["severity"] == "None"
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "NoDrift")
