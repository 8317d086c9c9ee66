"""Benchmark: 500 ModelDeployments created at once against the local Kubernetes API.

Measures, with the real operator (`python -m driftline.operator`) in its own process:
- the time from the first create until every ModelDeployment has its Deployment, Service
  and PodDisruptionBudget and a Ready=True status;
- the operator's peak memory (VmHWM, the kernel's high-water mark of its RSS);
- the operator's CPU time and the API requests it makes while nothing changes afterwards
  (target: zero requests).

The local API server runs in this process (on a thread), with the Deployment and Job
stand-ins answering at once. The bench's own requests carry the User-Agent
"driftline-bench" and are not counted as the operator's.

Run: .venv/bin/python bench/operator/bench_operator.py [--count 500] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import kubernetes
import psutil

from driftline.apiserver.bootstrap import load_crds, write_kubeconfig
from driftline.apiserver.server import ApiHandler, LocalApiServer
from driftline_serving.examples import models as example_models
from driftline_serving.verify import main as verify_main

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"
BENCH_AGENT = "driftline-bench"


@attrs.define(kw_only=True)
class CountingHandler(ApiHandler):
    """Counts every request that does not come from the bench itself, by verb."""

    counts: Counter[str] = attrs.field(factory=Counter)

    def __bool__(self) -> bool:
        # kmock's handler is falsy while it has logged no request, and LocalApiServer picks
        # `handler or ApiHandler()`: without this, ours would be silently replaced.
        return True

    async def __call__(self, raw_request: Any) -> Any:
        if BENCH_AGENT not in raw_request.headers.get("User-Agent", ""):
            watch = raw_request.query.get("watch") in ("true", "1")
            self.counts["watch" if watch else raw_request.method] += 1
        return await super().__call__(raw_request)


class ApiThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.handler = CountingHandler(bookmark_interval=60.0)
        self.server = LocalApiServer(self.handler)
        self._stop = asyncio.Event()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        async def serve() -> None:
            async with self.server:
                load_crds(self.server.cluster, REPO / "crds")
                ready.set_result(None)
                await self._stop.wait()

        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(serve(),), daemon=True
        )
        self.thread.start()
        ready.result(timeout=30)

    def call(self, function: Any) -> Any:
        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def counts(self) -> Counter[str]:
        return self.call(lambda: Counter(self.handler.counts))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=30)


def bench_client(url: str) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    configuration.host = url
    configuration.connection_pool_maxsize = 16
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = BENCH_AGENT
    return client


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def list_json(url: str, path: str) -> list[dict[str, Any]]:
    """A raw list: the `kubernetes` client's model objects would cost the bench (and so the
    shared CPU) far more than the operator's own work."""
    request = urllib.request.Request(url + path, headers={"User-Agent": BENCH_AGENT})
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.loads(response.read())["items"])


def all_ready(url: str) -> int:
    """How many ModelDeployments are Ready with all their objects (four list calls)."""
    items = list_json(url, f"/apis/driftline.io/v1alpha1/namespaces/{NAMESPACE}/modeldeployments")
    names = {
        kind: {o["metadata"]["name"] for o in list_json(url, path)}
        for kind, path in (
            ("deployments", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"),
            ("services", f"/api/v1/namespaces/{NAMESPACE}/services"),
            ("budgets", f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets"),
        )
    }
    ready = 0
    for item in items:
        name = item["metadata"]["name"]
        conditions = (item.get("status") or {}).get("conditions") or []
        is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if (
            is_ready
            and f"{name}-stable" in names["deployments"]
            and name in names["services"]
            and name in names["budgets"]
        ):
            ready += 1
    return ready


def verified_model(work: Path) -> tuple[Path, str, str]:
    """A real ONNX model, verified by the real driftline-verify: its path, sha256, and the
    report that the verification Job's pod gives (its termination message)."""
    model = work / "model.onnx"
    sha256 = example_models.save(example_models.classifier_mlp(), model)
    log = work / "termination-log"
    verify_main(
        [
            "--model-uri",
            str(model),
            "--sha256",
            sha256,
            "--termination-log",
            str(log),
            "--artifact-dir",
            str(work / "artifacts"),
        ]
    )
    return model, sha256, log.read_text()


def run(count: int, idle_seconds: float, deadline_s: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    api = ApiThread()
    kubeconfig = write_kubeconfig(work / "kubeconfig", api.server.url)
    client = bench_client(api.server.url)
    core = kubernetes.client.CoreV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    core.create_namespace({"metadata": {"name": NAMESPACE}})

    model, sha256, report = verified_model(work)
    api.call(
        lambda: api.server.controllers.jobs.set_outcome(
            "model-v1-verify", succeed=True, message=report
        )
    )

    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    operator_log = (work / "operator.log").open("wb")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driftline.operator",
            "--bind",
            "127.0.0.1",
            "--metrics-port",
            "0",
            "--liveness-port",
            "0",
        ],
        env=env,
        stdout=operator_log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    process = psutil.Process(operator.pid)
    try:
        custom.create_namespaced_custom_object(
            "driftline.io",
            "v1alpha1",
            NAMESPACE,
            "modelversions",
            {
                "apiVersion": "driftline.io/v1alpha1",
                "kind": "ModelVersion",
                "metadata": {"name": "model-v1"},
                "spec": {
                    "model": "model",
                    "version": "1",
                    "artifact": {"uri": f"s3://models/{model.name}", "sha256": sha256},
                },
            },
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            mv = custom.get_namespaced_custom_object(
                "driftline.io", "v1alpha1", NAMESPACE, "modelversions", "model-v1"
            )
            if (mv.get("status") or {}).get("phase") == "Ready":
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(
                "the ModelVersion never became Ready; see " + str(work / "operator.log")
            )
        rss_before_mb = process.memory_info().rss / 2**20

        bodies = [
            {
                "apiVersion": "driftline.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"md-{i:04d}"},
                "spec": {"modelVersion": "model-v1", "replicas": 2},
            }
            for i in range(count)
        ]
        started = time.monotonic()
        operator_cpu_start = sum(process.cpu_times()[:2])
        bench_cpu_start = sum(psutil.Process().cpu_times()[:2])
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda b: custom.create_namespaced_custom_object(
                        "driftline.io", "v1alpha1", NAMESPACE, "modeldeployments", b
                    ),
                    bodies,
                )
            )
        created_s = time.monotonic() - started
        ready = 0
        progress: list[tuple[float, int]] = []
        while time.monotonic() - started < deadline_s:
            ready = all_ready(api.server.url)
            progress.append((round(time.monotonic() - started, 2), ready))
            if ready == count:
                break
            time.sleep(1.0)
        all_ready_s = time.monotonic() - started if ready == count else None
        operator_cpu_run = sum(process.cpu_times()[:2]) - operator_cpu_start
        bench_cpu_run = sum(psutil.Process().cpu_times()[:2]) - bench_cpu_start

        # Quiescence: trailing work (status echoes of the last writes) drains; wait until
        # the operator has made no request for 5 s, then measure the idle window.
        quiet_since, last_total = time.monotonic(), sum(api.counts().values())
        settle_deadline = time.monotonic() + 120
        while time.monotonic() - quiet_since < 5 and time.monotonic() < settle_deadline:
            time.sleep(0.5)
            total = sum(api.counts().values())
            if total != last_total:
                quiet_since, last_total = time.monotonic(), total
        settled_s = time.monotonic() - started
        busy_counts = api.counts()
        cpu_before = process.cpu_times()
        counts_before = api.counts()
        idle_started = time.monotonic()
        time.sleep(idle_seconds)  # the measurement window itself, not synchronisation
        idle_elapsed = time.monotonic() - idle_started
        cpu_after = process.cpu_times()
        idle_counts = api.counts() - counts_before
        idle_cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        return {
            "count": count,
            "create_seconds": round(created_s, 2),
            "all_ready_seconds": None if all_ready_s is None else round(all_ready_s, 2),
            "ready_at_end": ready,
            "peak_rss_mb": round(peak_rss_mb(operator.pid), 1),
            "rss_before_creates_mb": round(rss_before_mb, 1),
            "operator_requests_until_quiet": dict(busy_counts),
            "quiet_after_seconds": round(settled_s, 1),
            "operator_cpu_seconds_until_all_ready": round(operator_cpu_run, 1),
            "bench_process_cpu_seconds_until_all_ready": round(bench_cpu_run, 1),
            "idle_seconds": round(idle_elapsed, 1),
            "idle_cpu_percent": round(100 * idle_cpu_s / idle_elapsed, 3),
            "idle_api_requests": dict(idle_counts),
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


def machine() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "kopf": version("kopf"),
        "kubernetes": version("kubernetes"),
        "kmock": version("kmock"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--deadline-seconds", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = {"machine": machine(), **run(args.count, args.idle_seconds, args.deadline_seconds)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0 if result["ready_at_end"] == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
