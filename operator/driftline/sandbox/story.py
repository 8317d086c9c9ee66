"""The sandbox's story: the bundled example made on the spot, served, rolled out, drifted
and brought back (sandbox/example.py makes the models, data and traffic).

1. the first ModelVersion is verified by its real Job and goes Ready;
2. the DriftPolicy and the ModelDeployment, which follows the model (`versionSelector`),
   go Healthy on it, and the steady traffic through the Service is answered by it; each
   request's true label is fed back to the pod that answered (sandbox/traffic.py), and
   its drift sidecars measure the version's live accuracy;
3. the second ModelVersion goes Ready, the deployment moves to it by itself as a canary,
   gated by analysis (built-in gates from the pods' /metrics, the drift gate);
4. by scenario: `default` promotes it, then the traffic drifts (Medium): the policy's
   retraining Job runs the example's retrain.py and its ModelVersion rolls out as a
   canary and is promoted; `bad` (a version whose requests all fail) is aborted by
   analysis while v1 answers; `rollback` promotes it, then a High drift sends traffic
   back to v1.

Every transition is read from the resources' status and the pods' responses.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from driftline.sandbox import example
from driftline.sandbox.example import Artifacts, Built
from driftline.sandbox.kube import Kube, KubeError
from driftline.sandbox.traffic import LabelFeed, Traffic

NAMESPACE = "sandbox"
DEPLOYMENT = "churn"
MODEL = "churn"
POLICY = "churn-drift"
GROUP = "driftline.io/v1alpha1"
# the retraining Job's ModelVersion, named by the operator <policy>-retrained-<n>
RETRAINED = f"{POLICY}-retrained-1"


@dataclass(frozen=True)
class Scenario:
    name: str  # default, bad or rollback
    description: str
    quick: bool = False
    canary_pause_s: int = 15
    replicas: int = 2
    # the kubelet's longest probe period (None: as rendered)
    max_probe_period_s: float | None = 1.0
    restart_backoff_base_s: float = 10.0
    traffic_interval_s: float = 0.1
    phase_timeout_s: float = 180.0
    drift_interval_s: int = 10
    # the analysis gates' interval (built-in gates, drift gate), and the wait before a
    # run's first interval: a new pod is in Prometheus' file discovery and scraped twice
    # within about 3 s on an idle machine; 3 s still gave "0 requests" under the test
    # suite's load (a held, Inconclusive rollout)
    analysis_interval_s: int = 10
    analysis_delay_s: int = 6

    @property
    def label(self) -> str:
        return f"{self.name} (quick)" if self.quick else self.name


SCENARIOS: dict[str, Scenario] = {
    "default": Scenario(
        "default",
        "v1 goes Ready and serves; v2 rolls out as a canary and is promoted by analysis; "
        "a price rise drifts one feature (Medium): a retraining Job makes a new version, "
        "which rolls out as a canary and is promoted",
    ),
    "bad": Scenario(
        "bad",
        "v2 has another input signature: every request it gets fails, analysis aborts its "
        "canary and v1 keeps answering",
    ),
    "rollback": Scenario(
        "rollback",
        "v2 is promoted, then a new market drifts every feature and the outputs (High): "
        "traffic goes back to v1",
    ),
}


def scenario(name: str, quick: bool = False) -> Scenario:
    """A scenario, with short pauses, probe periods and intervals when `quick` (tests, CI)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
    chosen = SCENARIOS[name]
    if not quick:
        return chosen
    return replace(
        chosen,
        quick=True,
        canary_pause_s=4,
        max_probe_period_s=0.5,
        restart_backoff_base_s=1.0,
        phase_timeout_s=120.0,
        drift_interval_s=3,
        analysis_interval_s=4,
    )


class StoryFailed(RuntimeError):
    """A phase did not happen in time; the message says which and what was seen."""


@dataclass
class View:
    """What the display shows; the story and its monitor keep it current."""

    scenario: str = ""
    phase: str = "starting"
    status: dict[str, Any] = field(default_factory=dict)  # the ModelDeployment's
    policy: dict[str, Any] = field(default_factory=dict)  # the DriftPolicy's status
    versions: dict[str, str] = field(default_factory=dict)  # ModelVersion -> phase
    labels: dict[str, str] = field(default_factory=dict)  # ModelVersion -> spec.version
    events: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)
    # spans across phases, e.g. drift onset -> Drifted
    milestones: list[tuple[str, float]] = field(default_factory=list)
    world: str = "steady"  # which world the traffic comes from (example.WORLDS)
    traffic: Traffic = field(default_factory=Traffic)
    feed: LabelFeed = field(default_factory=LabelFeed)  # the traffic's labels, fed back
    notes: list[str] = field(default_factory=list)
    report_url: str = ""
    phase_started: float = field(default_factory=time.monotonic)

    def enter(self, phase: str, moment: float | None = None) -> None:
        """Close the current phase (its time goes into the summary) and open `phase`."""
        moment = time.monotonic() if moment is None else moment
        if self.timings or self.phase != "starting":
            self.timings.append((self.phase, moment - self.phase_started))
        self.phase, self.phase_started = phase, moment


def model_version(name: str, version: str, base_url: str, built: Built) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL,
            "version": version,
            "artifact": {
                "uri": f"{base_url}/{built.folder}/{built.model_file}",
                "sha256": built.model_sha256,
            },
            "features": example.features(),
            "reference": {
                "uri": f"{base_url}/{built.folder}/{built.reference_file}",
                "sha256": built.reference_sha256,
            },
            "metrics": built.metrics,
        },
    }


def model_deployment(scenario: Scenario) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ModelDeployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {
            # it follows the model: the newest Ready version that passed its validation
            # gate (a retrained one too) rolls out by itself
            "versionSelector": {"model": MODEL},
            "replicas": scenario.replicas,
            "strategy": {
                "type": "Canary",
                "canary": {
                    "steps": [
                        {"weight": 50, "pauseSeconds": scenario.canary_pause_s},
                        {"weight": 100, "analysis": False},
                    ]
                },
                # Gates with no PromQL to write: the built-in ones read the sandbox's
                # Prometheus where one runs (the operator's DRIFTLINE_PROMETHEUS_URL),
                # else the pods' own /metrics; the drift gate the canary's sidecar
                # reports. The sandbox's traffic is light, so the minimum counts are small
                # and the latency bound loose (timings on a busy laptop are noisy).
                "analysis": {
                    "intervalSeconds": scenario.analysis_interval_s,
                    "initialDelaySeconds": scenario.analysis_delay_s,
                    "count": 2,
                    "builtin": {"minRequests": 5, "maxP99Ratio": 20},
                },
            },
        },
    }


def retraining(scenario: Scenario, artifacts: Artifacts, base_url: str) -> dict[str, Any]:
    """The retraining Job: the example's retrain.py as a local process (the kubelet runs
    commands), on the labelled price-rise window; it writes under the artifacts' folder,
    which the sandbox serves over http at `base_url`."""
    return {
        "promotion": "Canary",
        "outputUri": (artifacts.directory / "retrained").as_uri() + "/",
        "maxConcurrent": 1,
        "cooldownSeconds": 3600,  # one Job per story
        "activeDeadlineSeconds": 600,
        "validation": {"minMetrics": {"accuracy": 0.6}},
        "jobTemplate": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [
                        {
                            "name": "train",
                            "image": "driftline/churn-retrain:sandbox",
                            "command": [sys.executable, str(example.RETRAIN_PROGRAM)],
                            # each Job writes under <outputUri>/<job>/: served at the same
                            # path under base_url
                            "args": [
                                "--data",
                                str(artifacts.window_csv),
                                "--published-uri",
                                f"{base_url}/retrained/$(JOB_NAME)/",
                                "--seed",
                                "0",
                            ],
                            "env": [
                                {
                                    "name": "JOB_NAME",
                                    "valueFrom": {
                                        "fieldRef": {"fieldPath": "metadata.labels['job-name']"}
                                    },
                                }
                            ],
                            # No /tmp volume (and so no read-only root, unlike the
                            # example's manifest): the sandbox's kubelet maps every
                            # argument under a mountPath into the volume, and the
                            # story's workdir, which holds the data and the output, is
                            # often under /tmp.
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                }
            },
        },
    }


def drift_policy(scenario: Scenario, artifacts: Artifacts, base_url: str) -> dict[str, Any]:
    actions: list[dict[str, str]] = [
        {"severity": "Low", "action": "Alert"},
        {"severity": "Medium", "action": "Retrain"},
        {"severity": "High", "action": "Rollback"},
    ]
    if scenario.name == "rollback":
        # every rule the severity reaches applies: without this, High would also retrain,
        # and the retrained version would roll out over the rollback
        actions = [a for a in actions if a["action"] != "Retrain"]
    spec: dict[str, Any] = {
        "targetRef": {"apiVersion": GROUP, "kind": "ModelDeployment", "name": DEPLOYMENT},
        "sampling": {"rate": 1.0},
        "window": {
            "size": 150,
            "minSamples": 50,
            # old samples leave the window, so it sees the drift soon after it starts
            "maxAgeSeconds": 6 * scenario.drift_interval_s,
            "intervalSeconds": scenario.drift_interval_s,
        },
        # Windows overlap and come every few seconds, so a chance difference in one is
        # seen again in the next and would be confirmed: a strict level keeps the steady
        # world quiet (the price rise's p-value is far below it).
        "significance": 0.001,
        "correction": "Bonferroni",
        "hysteresis": {"consecutiveWindows": 2, "cooldownSeconds": 60},
        # the traffic's labels, fed back: the live accuracy against the ModelVersion's
        # offline one. The price rise leaves it (0.78 against 0.78, sandbox/example.py);
        # the new market takes it to 0.51, which is High. A drop of 0.2 is 3.4 standard
        # errors of the smallest window measured (50 labels) away from the steady world.
        "performance": {"metric": "accuracy", "minLabels": 50, "maxAbsoluteDrop": 0.2},
        "actions": actions,
    }
    if any(a["action"] == "Retrain" for a in actions):
        spec["retraining"] = retraining(scenario, artifacts, base_url)
    return {
        "apiVersion": GROUP,
        "kind": "DriftPolicy",
        "metadata": {"name": POLICY, "namespace": NAMESPACE},
        "spec": spec,
    }


def analysis_problems(status: dict[str, Any]) -> str:
    """The latest analysis run's verdict and its gates' last no-data and error messages:
    why a rollout is held, for a phase that did not happen."""
    runs = status.get("analysis") or []
    if not runs:
        return ""
    run = runs[-1]
    parts = [f"analysis {run.get('name')} of {run.get('version')}: {run.get('verdict')}"]
    for gate in run.get("gates") or []:
        for kind in ("lastNoData", "lastError", "lastFailed"):
            measurement = gate.get(kind) or {}
            if measurement:
                parts.append(
                    f"{gate.get('name')} {kind} at {measurement.get('at')}: "
                    f"{measurement.get('message') or measurement.get('value')}"
                )
    return "; ".join(parts)[:1200] + "; "


def measured_accuracy(report: dict[str, Any]) -> float | None:
    """A pod report's live metric from labels fed back (None under minLabels)."""
    performance = (report.get("evaluation") or {}).get("performance") or {}
    value = performance.get("value")
    return float(value) if isinstance(value, int | float) else None


def healthy_on(status: dict[str, Any], version: str) -> bool:
    return (
        status.get("phase") == "Healthy"
        and status.get("stableVersion") == version
        and not status.get("canaryVersion")
    )


def in_history(status: dict[str, Any], version: str, outcome: str) -> bool:
    return any(
        r.get("version") == version and r.get("outcome") == outcome
        for r in status.get("history") or []
    )


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in status.get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return {}


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
                    f"(deployment status: {json.dumps(self.view.status)[:400]}; "
                    f"{analysis_problems(self.view.status)}"
                    f"policy: {json.dumps(self.view.policy)[:300]})"
                )
            await asyncio.sleep(0.2)  # polling interval of the API, not synchronisation

    async def _status(self, plural: str, name: str) -> dict[str, Any]:
        obj = await self.kube.get(GROUP, plural, NAMESPACE, name)
        return (obj or {}).get("status") or {}

    async def _version_ready(self, name: str) -> bool:
        return (await self._status("modelversions", name)).get("phase") == "Ready"

    async def _serving(self, name: str, label: str) -> bool:
        status = await self._status("modeldeployments", DEPLOYMENT)
        return healthy_on(status, name) and self.view.traffic.only(label)

    async def _accuracy_measured(self, name: str) -> bool:
        pods = (await self._status("driftpolicies", POLICY)).get("pods") or {}
        return any(
            measured_accuracy(report) is not None
            for report in pods.values()
            if report.get("modelVersion") == name
        )

    async def _create_version(self, name: str, label: str, built: str) -> None:
        body = model_version(name, label, self.base_url, self.artifacts.models[built])
        await self.kube.create(GROUP, "modelversions", NAMESPACE, body)

    async def run(self) -> None:
        self.view.scenario = self.scenario.label
        await self.kube.create("v1", "namespaces", None, {"metadata": {"name": NAMESPACE}})
        await self._create_version("churn-v1", "1.0.0", "v1")
        self._phase("verifying churn-v1")
        await self._until("churn-v1 Ready", lambda: self._version_ready("churn-v1"))
        self._phase("serving churn-v1")
        policy = drift_policy(self.scenario, self.artifacts, self.base_url)
        await self.kube.create(GROUP, "driftpolicies", NAMESPACE, policy)
        await self.kube.create(
            GROUP, "modeldeployments", NAMESPACE, model_deployment(self.scenario)
        )
        await self._until(
            "churn Healthy on churn-v1, answering with 1.0.0",
            lambda: self._serving("churn-v1", "1.0.0"),
        )
        self._phase("labels fed back to churn-v1")
        await self._until(
            "churn-v1's drift sidecars measuring its accuracy on the labels fed back",
            lambda: self._accuracy_measured("churn-v1"),
        )
        self._phase("verifying churn-v2")
        await self._create_version(
            "churn-v2", "2.0.0", "bad" if self.scenario.name == "bad" else "v2"
        )
        await self._until("churn-v2 Ready", lambda: self._version_ready("churn-v2"))
        self._phase("canary churn-v2")
        if self.scenario.name == "bad":
            await self._bad_canary_aborted()
        else:
            await self._until(
                "churn promoted to churn-v2 (it follows the model), answering with 2.0.0",
                lambda: self._serving("churn-v2", "2.0.0"),
            )
        if self.scenario.name == "default":
            await self._drift_retrain_promote()
        elif self.scenario.name == "rollback":
            await self._drift_rollback()
        self._phase("done")

    async def _bad_canary_aborted(self) -> None:
        # A following deployment never chooses an aborted version again, so once the abort
        # is recorded it serves v1 as its desired version: `abortedVersion` (which holds
        # while the desired version is the aborted one) and Degraded pass in a moment;
        # the history's Aborted revision stays.
        async def aborted() -> bool:
            status = await self._status("modeldeployments", DEPLOYMENT)
            return (
                in_history(status, "churn-v2", "Aborted")
                and healthy_on(status, "churn-v1")
                and self.view.traffic.only("1.0.0")
            )

        await self._until("churn-v2's canary aborted by analysis, 1.0.0 answering", aborted)

    async def _drifted(self, severity: str) -> bool:
        status = await self._status("driftpolicies", POLICY)
        return (
            condition(status, "Drifted").get("status") == "True"
            and status.get("severity") == severity
        )

    async def _drift_retrain_promote(self) -> None:
        self._phase("drift: a price rise")
        onset = time.monotonic()
        self.view.world = "price-rise"
        await self._until("the policy Drifted at Medium", lambda: self._drifted("Medium"))
        self.view.milestones.append(("drift onset -> Drifted", time.monotonic() - onset))
        self._phase("retraining")

        async def retrained_ready() -> bool:
            return await self._version_ready(RETRAINED)

        await self._until(f"{RETRAINED} made by the retraining Job and Ready", retrained_ready)
        obj = await self.kube.get(GROUP, "modelversions", NAMESPACE, RETRAINED)
        label = str(((obj or {}).get("spec") or {}).get("version", ""))
        self._phase(f"canary {RETRAINED}")
        await self._until(
            f"churn promoted to {RETRAINED}, answering with {label}",
            lambda: self._serving(RETRAINED, label),
        )
        self.view.milestones.append(
            ("drift onset -> traffic on a good version", time.monotonic() - onset)
        )

    async def _drift_rollback(self) -> None:
        self._phase("drift: a new market")
        onset = time.monotonic()
        self.view.world = "new-market"
        await self._until("the policy Drifted at High", lambda: self._drifted("High"))
        self.view.milestones.append(("drift onset -> Drifted", time.monotonic() - onset))
        self._phase("rollback to churn-v1")

        # As with an abort, a follower never chooses a rolled-back version again: once
        # the rollback is recorded it serves v1 as its desired version, so
        # rolledBackVersion and RolledBack=True pass in a moment; the history's
        # RolledBack revision stays.
        async def rolled_back() -> bool:
            status = await self._status("modeldeployments", DEPLOYMENT)
            return (
                in_history(status, "churn-v2", "RolledBack")
                and healthy_on(status, "churn-v1")
                and self.view.traffic.only("1.0.0")
            )

        await self._until("traffic rolled back to churn-v1, answering with 1.0.0", rolled_back)
        self.view.milestones.append(
            ("drift onset -> traffic on a good version", time.monotonic() - onset)
        )


async def monitor(kube: Kube, view: View) -> None:
    """Keep the view's status, policy, versions and latest Events current."""
    while True:
        try:
            obj = await kube.get(GROUP, "modeldeployments", NAMESPACE, DEPLOYMENT)
            view.status = (obj or {}).get("status") or {}
            policy = await kube.get(GROUP, "driftpolicies", NAMESPACE, POLICY)
            view.policy = (policy or {}).get("status") or {}
            versions = await kube.list(GROUP, "modelversions", NAMESPACE)
            view.versions = {
                v["metadata"]["name"]: (v.get("status") or {}).get("phase", "") for v in versions
            }
            view.labels = {
                v["metadata"]["name"]: str((v.get("spec") or {}).get("version", ""))
                for v in versions
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
