"""Benchmark: 100 ModelDeployments each rolling out a canary at once (issue 14).

The real operator (`python -m driftline.operator`) against the local Kubernetes API in this
process (the Deployment stand-in reports new pods ready at once). N ModelDeployments
serve version 1 with a three-step canary (20% -> 50% -> 100%, no pauses, 4 replicas);
then every one is moved to version 2 at once. Measures the time until every one has
promoted version 2 (stableVersion 2, no canary, Ready=True, the canary Deployment gone),
the operator's CPU time and peak memory, and its API requests per rollout.

Run: .venv/bin/python bench/operator/bench_rollouts.py [--count 100] [--json FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import psutil
from bench_operator import (
    NAMESPACE,
    REPO,
    ApiThread,
    bench_client,
    list_json,
    machine,
    peak_rss_mb,
    verified_model,
)

from driftline.apiserver.bootstrap import write_kubeconfig

STEPS = [{"weight": 20}, {"weight": 50}, {"weight": 100}]
REPLICAS = 4


def promoted(url: str, version: str) -> int:
    """How many ModelDeployments have finished promoting `version` (two list calls)."""
    items = list_json(url, f"/apis/driftline.io/v1alpha1/namespaces/{NAMESPACE}/modeldeployments")
    deployments = {
        d["metadata"]["name"]
        for d in list_json(url, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
    }
    done = 0
    for item in items:
        status = item.get("status") or {}
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
        )
        if (
            ready
            and status.get("stableVersion") == version
            and not status.get("canaryVersion")
            and f"{item['metadata']['name']}-canary" not in deployments
        ):
            done += 1
    return done


def verified_versions(api: ApiThread, custom: Any, work: Path) -> None:
    model, sha256, report = verified_model(work)
    for name in ("model-v1", "model-v2"):
        api.call(
            lambda name=name: api.server.controllers.jobs.set_outcome(
                f"{name}-verify", succeed=True, message=report
            )
        )
        custom.create_namespaced_custom_object(
            "driftline.io",
            "v1alpha1",
            NAMESPACE,
            "modelversions",
            {
                "apiVersion": "driftline.io/v1alpha1",
                "kind": "ModelVersion",
                "metadata": {"name": name},
                "spec": {
                    "model": "model",
                    "version": name[-1],
                    "artifact": {"uri": f"s3://models/{model.name}", "sha256": sha256},
                },
            },
        )


def wait_for_count(
    count_done: Any, target: int, deadline_s: float, what: str
) -> list[tuple[float, int]]:
    """Poll until `count_done()` reaches `target`; the progress as (seconds, done) pairs."""
    started, progress = time.monotonic(), []
    while time.monotonic() - started < deadline_s:
        done = count_done()
        progress.append((round(time.monotonic() - started, 2), done))
        if done >= target:
            return progress
        time.sleep(0.5)  # the bench's polling interval
    raise RuntimeError(f"timed out waiting for {what}: {progress[-3:]}")


def run(count: int, deadline_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="driftline-rollouts-"))
    api = ApiThread()
    kubeconfig = write_kubeconfig(work / "kubeconfig", api.server.url)
    client = bench_client(api.server.url)
    kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": NAMESPACE}})
    custom = kubernetes.client.CustomObjectsApi(client)
    verified_versions(api, custom, work)
    operator_log = (work / "operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "driftline.operator", "--metrics-port", "0", "--liveness-port", "0"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=operator_log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    process = psutil.Process(operator.pid)
    names = [f"md-{i:04d}" for i in range(count)]
    try:

        def create(name: str) -> None:
            custom.create_namespaced_custom_object(
                "driftline.io",
                "v1alpha1",
                NAMESPACE,
                "modeldeployments",
                {
                    "apiVersion": "driftline.io/v1alpha1",
                    "kind": "ModelDeployment",
                    "metadata": {"name": name},
                    "spec": {
                        "modelVersion": "model-v1",
                        "replicas": REPLICAS,
                        "strategy": {"type": "Canary", "canary": {"steps": STEPS}},
                    },
                },
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        wait_for_count(lambda: promoted(api.server.url, "model-v1"), count, deadline_s, "v1")

        counts_before = api.counts()
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()

        def move(name: str) -> None:
            custom.patch_namespaced_custom_object(
                "driftline.io",
                "v1alpha1",
                NAMESPACE,
                "modeldeployments",
                name,
                {"spec": {"modelVersion": "model-v2"}},
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(move, names))
        progress = wait_for_count(
            lambda: promoted(api.server.url, "model-v2"), count, deadline_s, "v2 promoted"
        )
        all_promoted_s = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        requests = api.counts() - counts_before
        return {
            "count": count,
            "steps": [s["weight"] for s in STEPS],
            "replicas": REPLICAS,
            "all_promoted_seconds": round(all_promoted_s, 2),
            "operator_cpu_seconds": round(cpu, 1),
            "peak_rss_mb": round(peak_rss_mb(operator.pid), 1),
            "operator_requests": dict(requests),
            "requests_per_rollout": round(sum(requests.values()) / count, 1),
            "progress": progress[:: max(1, len(progress) // 20)],
            "operator_log": str(work / "operator.log"),
        }
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        operator_log.close()
        api.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--deadline-seconds", type=float, default=600.0)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = {"machine": machine(), **run(args.count, args.deadline_seconds)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
