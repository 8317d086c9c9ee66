"""Analysis gates decide rollouts: the real operator on the local Kubernetes API, reading a
real Prometheus that scrapes real `driftline-serve` processes driven with traffic (or, for
the built-in gates without Prometheus, those processes' own /metrics through Pods).

A stable and a canary server stand in for the tracks' pods: the local API runs no pods,
so each server is started by the test with the identity labels the operator renders for a
track (DRIFTLINE_MODEL_VERSION_NAME, DRIFTLINE_TRACK), and traffic goes to both as the
Service would send it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_harness import NAMESPACE, ModelFile, model_deployment, verified_version, wait_for

from driftline.render import labels as lbl
from driftline_serving.examples import models as example_models
from tests.analysis.prometheus_server import PrometheusServer, start_prometheus
from tests.support import free_port, wait_until

INFER = "/v2/models/churn/infer"
REQUEST = json.dumps(
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
).encode()
SUCCESS_RATE = (
    'sum(rate(driftline_inference_requests_total{namespace="{{namespace}}",'
    'version="{{version}}",track="{{track}}",outcome="success"}[4s])) / '
    'sum(rate(driftline_inference_requests_total{namespace="{{namespace}}",'
    'version="{{version}}",track="{{track}}"}[4s]))'
)


class OtherSignature(ModelFile):
    """A model that takes two inputs: the stable track's requests fail against it."""

    def __init__(self, directory: Path):
        self.path = directory / "two-inputs.onnx"
        self.sha256 = example_models.save(example_models.two_input_model(), self.path)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{self.address}{path}", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as error:
            return error.code

    def infer(self) -> int:
        request = urllib.request.Request(
            f"http://{self.address}{INFER}",
            data=REQUEST,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Servers:
    directory: Path
    started: list[Server] = field(default_factory=list)

    def start(
        self, model: ModelFile, version: str, track: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> Server:
        port = port or free_port()
        log = self.directory / f"serve-{version}-{track}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "driftline_serving.server.cli"],
            env={
                **os.environ,
                "DRIFTLINE_MODEL_NAME": "churn",
                "DRIFTLINE_MODEL_VERSION": "1",
                "DRIFTLINE_MODEL_VERSION_NAME": version,
                "DRIFTLINE_TRACK": track,
                "DRIFTLINE_MODEL_URI": str(model.path),
                "DRIFTLINE_SHA256": model.sha256,
                "DRIFTLINE_HOST": host,
                "DRIFTLINE_PORT": str(port),
                "DRIFTLINE_ARTIFACT_DIR": str(self.directory / f"artifacts-{version}-{track}"),
                "DRIFTLINE_INTRA_OP_THREADS": "1",
            },
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = Server(process, host, port, log)
        self.started.append(server)
        wait_until(
            lambda: server.get("/v2/health/ready") == 200,
            60,
            what=f"driftline-serve {version}/{track} ready",
            ignore=(OSError,),
        )
        return server

    def stop(self) -> None:
        for server in self.started:
            server.stop()


class Traffic:
    """Steady requests to every server, as a Service spreads them over the tracks' pods."""

    def __init__(self, servers: list[Server]):
        self.servers = servers
        self.stopping = threading.Event()
        self.answers: dict[str, list[int]] = {s.address: [] for s in servers}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for server in self.servers:
                try:
                    self.answers[server.address].append(server.infer())
                except OSError:
                    self.answers[server.address].append(0)
            self.stopping.wait(0.01)  # a request rate, not synchronisation

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def traffic() -> Iterator[Callable[[list[Server]], Traffic]]:
    running: list[Traffic] = []

    def start(targets: list[Server]) -> Traffic:
        running.append(Traffic(targets))
        return running[-1]

    yield start
    for item in running:
        item.stop()


def prometheus_for(tmp_path: Path, *targets: Server) -> PrometheusServer:
    prometheus = start_prometheus(
        tmp_path / "prometheus", [t.address for t in targets], labels={"namespace": NAMESPACE}
    )
    prometheus.wait_scraping(len(targets))
    return prometheus


def status(cluster, name: str = "churn") -> dict[str, Any]:
    return cluster.status("modeldeployments", name)


def healthy_on(cluster, version: str) -> bool:
    s = status(cluster)
    return s.get("phase") == "Healthy" and s.get("stableVersion") == version


def run_of(cluster, name: str) -> dict[str, Any] | None:
    return next((r for r in status(cluster).get("analysis") or [] if r["name"] == name), None)


def analysis(**fields: Any) -> dict[str, Any]:
    return {"intervalSeconds": 2, "count": 2, "driftGate": False, **fields}


def canary_strategy(gates: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50}, {"weight": 100, "analysis": False}]},
        "analysis": gates,
    }


def deploy(cluster, tmp_path, stable_model, canary_model, strategy, **spec) -> None:
    verified_version(cluster, tmp_path, "churn-a", stable_model)
    verified_version(cluster, tmp_path, "churn-b", canary_model)
    for name in ("churn-a", "churn-b"):
        wait_for(lambda name=name: cluster.status("modelversions", name).get("phase") == "Ready")
    cluster.create(
        "modeldeployments",
        model_deployment("churn", "churn-a", replicas=2, strategy=strategy, **spec),
    )
    wait_for(lambda: healthy_on(cluster, "churn-a"), what="Healthy on churn-a")
    cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-b"}})


def prometheus_gate(prometheus: PrometheusServer, query: str = SUCCESS_RATE, **fields: Any):
    return analysis(
        prometheusUrl=prometheus.url,
        metrics=[{"name": "success-rate", "query": query, "min": 0.95, **fields}],
    )


def test_a_healthy_canary_is_promoted_by_its_measured_success_rate(
    cluster, operator, model_file, servers, traffic, tmp_path
):
    stable = servers.start(model_file, "churn-a", "stable")
    canary = servers.start(model_file, "churn-b", "canary")
    traffic([stable, canary])
    prometheus = prometheus_for(tmp_path, stable, canary)
    try:
        deploy(
            cluster, tmp_path, model_file, model_file, canary_strategy(prometheus_gate(prometheus))
        )
        wait_for(lambda: healthy_on(cluster, "churn-b"), timeout=90, what="promoted")
    finally:
        prometheus.stop()
    run = run_of(cluster, "step-0")
    assert run is not None and run["verdict"] == "Passed"
    gate = run["gates"][0]
    assert (gate["name"], gate["kind"], gate["track"], gate["successful"]) == (
        "success-rate",
        "Prometheus",
        "canary",
        2,
    )
    assert all(float(m["value"]) == 1.0 for m in gate["recent"])
    assert "driftline_analysis_runs_total" in operator.metrics()
    assert 'run="step-0",verdict="Passed"' in operator.metrics()


def test_a_canary_whose_requests_fail_is_aborted_at_its_first_gate(
    cluster, operator, model_file, servers, traffic, tmp_path
):
    other = OtherSignature(tmp_path)
    stable = servers.start(model_file, "churn-a", "stable")
    canary = servers.start(other, "churn-b", "canary")
    load = traffic([stable, canary])
    wait_for(lambda: 400 in load.answers[canary.address], what="the canary refusing requests")
    prometheus = prometheus_for(tmp_path, stable, canary)
    try:
        deploy(cluster, tmp_path, model_file, other, canary_strategy(prometheus_gate(prometheus)))
        wait_for(
            lambda: status(cluster).get("abortedVersion") == "churn-b",
            timeout=90,
            what="the canary aborted",
        )
    finally:
        prometheus.stop()
    s = status(cluster)
    assert s["stableVersion"] == "churn-a" and not s.get("canaryVersion")
    gate = run_of(cluster, "step-0")["gates"][0]
    assert gate["verdict"] == "Failed"
    assert gate["lastFailed"]["value"] == "0.0"
    assert gate["lastFailed"]["message"] == "0 is below min 0.95"
    degraded = next(c for c in s["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "AnalysisFailed"
    assert "gate success-rate" in degraded["message"] and "the last 0" in degraded["message"]
    reasons = [e.reason for e in cluster.events_for("churn")]
    assert "AnalysisFailed" in reasons and "RolloutAborted" in reasons


def test_a_query_with_no_data_holds_the_rollout_inconclusive_and_never_promotes(
    cluster, operator, model_file, servers, traffic, tmp_path
):
    stable = servers.start(model_file, "churn-a", "stable")
    canary = servers.start(model_file, "churn-b", "canary")
    traffic([stable, canary])
    prometheus = prometheus_for(tmp_path, stable, canary)
    missing = 'sum(rate(no_such_metric{version="{{version}}"}[4s]))'
    try:
        deploy(
            cluster,
            tmp_path,
            model_file,
            model_file,
            canary_strategy(prometheus_gate(prometheus, missing)),
        )
        wait_for(
            lambda: (run_of(cluster, "step-0") or {}).get("verdict") == "Inconclusive",
            timeout=90,
            what="the gate inconclusive",
        )
        progressing = next(c for c in status(cluster)["conditions"] if c["type"] == "Progressing")
        assert progressing["reason"] == "AnalysisInconclusive"
        gate = run_of(cluster, "step-0")["gates"][0]
        assert gate["noData"] == 2 and "no data never passes" in gate["reason"]
        # Later reconciles (one forced by a request that itself changes nothing) leave
        # the canary where it is: no data never promotes.
        started = run_of(cluster, "step-0")["startedAt"]
        for attempt in range(2):
            request_id = f"nudge-{attempt}"
            cluster.patch(
                "modeldeployments",
                "churn",
                {
                    "metadata": {
                        "annotations": {
                            "driftline.io/rollout-request": json.dumps(
                                {"id": request_id, "action": "resume"}
                            )
                        }
                    }
                },
            )
            wait_for(
                lambda request_id=request_id: status(cluster).get("handledRequest") == request_id,
                what="nudged",
            )
            s = status(cluster)
            assert s["canaryVersion"] == "churn-b" and s["stableVersion"] == "churn-a"
            assert s["currentStep"] == 0
        assert run_of(cluster, "step-0")["startedAt"] == started
        assert 'run="step-0",verdict="Inconclusive"' in operator.metrics()
    finally:
        prometheus.stop()


def test_prometheus_stopped_mid_analysis_ends_in_the_error_limit_not_a_pass(
    cluster, operator, model_file, servers, traffic, tmp_path
):
    stable = servers.start(model_file, "churn-a", "stable")
    canary = servers.start(model_file, "churn-b", "canary")
    traffic([stable, canary])
    prometheus = prometheus_for(tmp_path, stable, canary)
    gates = prometheus_gate(prometheus)
    gates.update(count=20, consecutiveErrorLimit=2)
    try:
        deploy(cluster, tmp_path, model_file, model_file, canary_strategy(gates))
        wait_for(
            lambda: (
                ((run_of(cluster, "step-0") or {}).get("gates") or [{}])[0].get("successful", 0)
                >= 1
            ),
            timeout=90,
            what="a first measurement",
        )
    finally:
        prometheus.stop()
    wait_for(
        lambda: run_of(cluster, "step-0")["verdict"] == "Inconclusive",
        timeout=60,
        what="the error limit",
    )
    gate = run_of(cluster, "step-0")["gates"][0]
    assert gate["consecutiveErrors"] == 3 and gate["errors"] >= 3
    assert "no answer from Prometheus" in gate["lastError"]["message"]
    assert "3 consecutive errors, more than the limit 2" in gate["reason"]
    s = status(cluster)
    assert s["canaryVersion"] == "churn-b" and s["stableVersion"] == "churn-a"


# --- the built-in gates, with no Prometheus at all -------------------------------------


def pod(name: str, track: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {**lbl.track_selector("churn", track)},
        },
        "spec": {"containers": [{"name": "server", "image": "driftline/serving:test"}]},
    }


def run_pod(api, name: str, track: str, server: Server) -> None:
    """The Pod the kubelet would report for `server`: its IP, Ready."""
    core = kubernetes.client.CoreV1Api(api.api_client())
    core.create_namespaced_pod(NAMESPACE, pod(name, track, server.host))
    core.patch_namespaced_pod_status(
        name,
        NAMESPACE,
        {
            "status": {
                "phase": "Running",
                "podIP": server.host,
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
    )


def builtin_gates(**fields: Any) -> dict[str, Any]:
    return analysis(builtin={"minRequests": 20, **fields})


@pytest.mark.parametrize("healthy", [True, False], ids=["promoted", "aborted"])
def test_built_in_gates_decide_the_same_without_prometheus(
    api, cluster, operator, model_file, servers, traffic, tmp_path, healthy
):
    port = free_port()
    canary_model = model_file if healthy else OtherSignature(tmp_path)
    stable = servers.start(model_file, "churn-a", "stable", host="127.0.0.41", port=port)
    canary = servers.start(canary_model, "churn-b", "canary", host="127.0.0.42", port=port)
    run_pod(api, "churn-stable-0", "stable", stable)
    run_pod(api, "churn-canary-0", "canary", canary)
    traffic([stable, canary])
    deploy(
        cluster,
        tmp_path,
        model_file,
        canary_model,
        canary_strategy(builtin_gates()),
        serving={"port": port},
    )
    if healthy:
        wait_for(lambda: healthy_on(cluster, "churn-b"), timeout=90, what="promoted")
    else:
        wait_for(
            lambda: status(cluster).get("abortedVersion") == "churn-b",
            timeout=90,
            what="aborted",
        )
    gates = {g["name"]: g for g in run_of(cluster, "step-0")["gates"]}
    assert set(gates) == {"success-rate", "success-rate-vs-stable", "p99-latency-vs-stable"}
    assert {g["kind"] for g in gates.values()} == {"Builtin"}
    rate = gates["success-rate"]
    if healthy:
        assert rate["verdict"] == "Passed"
        assert all(float(m["value"]) == 1.0 for m in rate["recent"] if m["phase"] == "Successful")
    else:
        assert rate["verdict"] == "Failed"
        assert rate["lastFailed"]["value"] == "0.0"
        drop = gates["success-rate-vs-stable"]
        assert drop["verdict"] in ("Failed", "Running")
