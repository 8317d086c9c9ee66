"""The sandbox's story: the bundled example made on the spot, served, and rolled out.

1. artifacts: two small ONNX classifiers (driftline_serving.examples) and a reference
   profile built by the real `driftline profile` from synthetic training data, served
   over http on loopback (the CRDs admit s3/http(s) artifact URIs, not file://);
2. the first ModelVersion is verified by its real Job and goes Ready;
3. the ModelDeployment (with a canary strategy) and its DriftPolicy go Healthy, and the
   steady traffic through the Service is answered by the first version;
4. the second ModelVersion goes Ready, the deployment moves to it as a canary through its
   steps and is promoted; the traffic is then answered by the second version only.

Every transition is read from the resources' status and the pods' responses.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from driftline.sandbox.kube import Kube, KubeError

NAMESPACE = "sandbox"
DEPLOYMENT = "churn"
MODEL = "churn"
POLICY = "churn-drift"
FEATURES = 32
GROUP = "driftline.io/v1alpha1"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    canary_steps: tuple[dict[str, Any], ...]
    replicas: int = 2
    # the kubelet's longest probe period (None: as rendered)
    max_probe_period_s: float | None = None
    restart_backoff_base_s: float = 10.0
    traffic_interval_s: float = 0.2
    phase_timeout_s: float = 180.0
    drift_interval_s: int = 10
    # the analysis gates' interval (built-in gates from the pods' /metrics, drift gate)
    analysis_interval_s: int = 10


SCENARIOS: dict[str, Scenario] = {
    "default": Scenario(
        "default",
        "v1 goes Ready and serves; v2 rolls out as a canary (50%) and is promoted by analysis",
        canary_steps=({"weight": 50, "pauseSeconds": 15}, {"weight": 100, "analysis": False}),
        max_probe_period_s=1.0,
    ),
    "quick": Scenario(
        "quick",
        "the default story with short pauses and probe periods (tests, CI)",
        canary_steps=({"weight": 50, "pauseSeconds": 4}, {"weight": 100, "analysis": False}),
        max_probe_period_s=0.5,
        restart_backoff_base_s=1.0,
        phase_timeout_s=120.0,
        drift_interval_s=3,
        analysis_interval_s=4,
    ),
}


class StoryFailed(RuntimeError):
    """A phase did not happen in time; the message says which and what was seen."""


@dataclass
class Traffic:
    """Answers of the steady traffic, by the model version that answered."""

    answered: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    recent: list[str] = field(default_factory=list)  # the last answers' versions

    def record(self, version: str | None) -> None:
        if version is None:
            self.errors += 1
            return
        self.answered[version] += 1
        self.recent = [*self.recent[-19:], version]

    def only(self, version: str, last: int = 10) -> bool:
        tail = self.recent[-last:]
        return len(tail) == last and all(v == version for v in tail)


@dataclass
class View:
    """What the display shows; the story and its monitor keep it current."""

    scenario: str = ""
    phase: str = "starting"
    status: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # ModelVersion -> phase
    events: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)
    traffic: Traffic = field(default_factory=Traffic)
    notes: list[str] = field(default_factory=list)
    phase_started: float = field(default_factory=time.monotonic)

    def enter(self, phase: str, moment: float | None = None) -> None:
        """Close the current phase (its time goes into the summary) and open `phase`."""
        moment = time.monotonic() if moment is None else moment
        if self.timings or self.phase != "starting":
            self.timings.append((self.phase, moment - self.phase_started))
        self.phase, self.phase_started = phase, moment


@dataclass(frozen=True)
class Artifacts:
    directory: Path
    models: dict[str, str]  # version -> sha256
    reference_sha256: str


def make_artifacts(directory: Path) -> Artifacts:
    """The example models and the reference profile, by the real `driftline profile`."""
    import subprocess

    import numpy as np

    from driftline_serving.examples import models as example_models

    directory.mkdir(parents=True, exist_ok=True)
    models = {
        "1.0.0": example_models.save(example_models.classifier_mlp(7), directory / "model-1.onnx"),
        "2.0.0": example_models.save(example_models.classifier_mlp(8), directory / "model-2.onnx"),
    }
    rng = np.random.default_rng(0)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    with (directory / "train.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        writer.writerows(rng.standard_normal((2000, FEATURES)).round(5).tolist())
    (directory / "schema.json").write_text(
        json.dumps([{"name": n, "type": "numeric"} for n in names])
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "profile",
            str(directory / "train.csv"),
            "--schema",
            str(directory / "schema.json"),
            "-o",
            str(directory / "reference.npz"),
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    reference = hashlib.sha256((directory / "reference.npz").read_bytes()).hexdigest()
    return Artifacts(directory, models, reference)


def model_version(name: str, version: str, base_url: str, artifacts: Artifacts) -> dict[str, Any]:
    number = version.split(".")[0]
    return {
        "apiVersion": GROUP,
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL,
            "version": version,
            "artifact": {
                "uri": f"{base_url}/model-{number}.onnx",
                "sha256": artifacts.models[version],
            },
            "features": [{"name": f"f{i:02d}", "type": "numeric"} for i in range(FEATURES)],
            "reference": {"uri": f"{base_url}/reference.npz", "sha256": artifacts.reference_sha256},
            "metrics": {"accuracy": 0.9},
        },
    }


def model_deployment(scenario: Scenario) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ModelDeployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {
            "modelVersion": "churn-v1",
            "replicas": scenario.replicas,
            "strategy": {
                "type": "Canary",
                "canary": {"steps": list(scenario.canary_steps)},
                # Gates with no Prometheus needed: the built-in ones read the pods' own
                # /metrics, the drift gate the canary's sidecar reports. The sandbox's
                # traffic is light, so the minimum counts are small and the latency bound
                # loose (timings on a busy laptop are noisy).
                "analysis": {
                    "intervalSeconds": scenario.analysis_interval_s,
                    "count": 2,
                    "builtin": {"minRequests": 5, "maxP99Ratio": 20},
                },
            },
        },
    }


def drift_policy(scenario: Scenario) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "DriftPolicy",
        "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": {
            "targetRef": {"apiVersion": GROUP, "kind": "ModelDeployment", "name": DEPLOYMENT},
            "sampling": {"rate": 1.0},
            "window": {
                "size": 500,
                "minSamples": 10,
                "intervalSeconds": scenario.drift_interval_s,
            },
        },
    }


def healthy_on(status: dict[str, Any], version: str) -> bool:
    return (
        status.get("phase") == "Healthy"
        and status.get("stableVersion") == version
        and not status.get("canaryVersion")
    )


class Story:
    def __init__(
        self,
        kube: Kube,
        scenario: Scenario,
        view: View,
        artifacts_url: str,
        artifacts: Artifacts,
        service_address: Callable[[], str | None],
    ) -> None:
        self.kube = kube
        self.scenario = scenario
        self.view = view
        self.base_url = artifacts_url
        self.artifacts = artifacts
        self.service_address = service_address

    def _phase(self, name: str) -> None:
        self.view.enter(name)

    async def _until(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + self.scenario.phase_timeout_s
        while not await check():
            if time.monotonic() > deadline:
                raise StoryFailed(
                    f"{what}: not seen within {self.scenario.phase_timeout_s:.0f} s "
                    f"(deployment status: {json.dumps(self.view.status)[:400]})"
                )
            await asyncio.sleep(0.2)  # polling interval of the API, not synchronisation

    async def _status(self, plural: str, name: str) -> dict[str, Any]:
        obj = await self.kube.get(GROUP, plural, NAMESPACE, name)
        return (obj or {}).get("status") or {}

    async def _version_ready(self, name: str) -> bool:
        return (await self._status("modelversions", name)).get("phase") == "Ready"

    async def run(self) -> None:
        self.view.scenario = self.scenario.name
        await self.kube.create("v1", "namespaces", None, {"metadata": {"name": NAMESPACE}})
        v1 = model_version("churn-v1", "1.0.0", self.base_url, self.artifacts)
        await self.kube.create(GROUP, "modelversions", NAMESPACE, v1)
        self._phase("verifying churn-v1")
        await self._until("churn-v1 Ready", lambda: self._version_ready("churn-v1"))
        self._phase("serving churn-v1")
        await self.kube.create(GROUP, "driftpolicies", NAMESPACE, drift_policy(self.scenario))
        await self.kube.create(
            GROUP, "modeldeployments", NAMESPACE, model_deployment(self.scenario)
        )

        async def serving_v1() -> bool:
            status = await self._status("modeldeployments", DEPLOYMENT)
            return healthy_on(status, "churn-v1") and self.view.traffic.only("1.0.0")

        await self._until("churn Healthy on churn-v1, answering with 1.0.0", serving_v1)
        self._phase("verifying churn-v2")
        v2 = model_version("churn-v2", "2.0.0", self.base_url, self.artifacts)
        await self.kube.create(GROUP, "modelversions", NAMESPACE, v2)
        await self._until("churn-v2 Ready", lambda: self._version_ready("churn-v2"))
        self._phase("canary churn-v2")
        await self.kube.patch(
            GROUP, "modeldeployments", NAMESPACE, DEPLOYMENT, {"spec": {"modelVersion": "churn-v2"}}
        )

        async def promoted() -> bool:
            status = await self._status("modeldeployments", DEPLOYMENT)
            return healthy_on(status, "churn-v2") and self.view.traffic.only("2.0.0")

        await self._until("churn promoted to churn-v2, answering with 2.0.0", promoted)
        self._phase("done")


async def send_traffic(
    view: View, address: Callable[[], str | None], interval_s: float, seed: int = 0
) -> None:
    """Steady inference requests through the Service, one connection each."""
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        while True:
            target = address()
            if target is not None:
                row = [round(rng.gauss(0, 1), 4) for _ in range(FEATURES)]
                body = {
                    "inputs": [
                        {"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": row}
                    ]
                }
                version: str | None = None
                try:
                    async with session.post(
                        f"http://{target}/v2/models/{MODEL}/infer",
                        json=body,
                        headers={"Connection": "close"},
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as response:
                        if response.status == 200:
                            version = (await response.json()).get("model_version")
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    version = None
                view.traffic.record(version)
            await asyncio.sleep(interval_s)  # the traffic's pace


async def monitor(kube: Kube, view: View) -> None:
    """Keep the view's status, versions and latest Events current."""
    while True:
        try:
            obj = await kube.get(GROUP, "modeldeployments", NAMESPACE, DEPLOYMENT)
            view.status = (obj or {}).get("status") or {}
            view.versions = {
                v["metadata"]["name"]: (v.get("status") or {}).get("phase", "")
                for v in await kube.list(GROUP, "modelversions", NAMESPACE)
            }
            events = await kube.list("v1", "events", NAMESPACE)
            events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
            view.events = [
                f"{e.get('type', '')} {e.get('reason', '')} "
                f"{(e.get('involvedObject') or {}).get('name', '')}: {e.get('message', '')}"
                for e in events[-6:]
            ]
        except (KubeError, aiohttp.ClientError):
            pass  # the API may be starting or stopping; the next round reads again
        await asyncio.sleep(0.5)  # the display's refresh pace
