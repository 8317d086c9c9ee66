"""The sandbox's scenarios end to end (quick): `driftline sandbox` in a subprocess, every
transition read from the resources' status and the answers through the Service."""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.sandbox import example
from tests.sandbox.harness import SandboxRun, all_gone, names
from tests.support import wait_until

STORY_DEADLINE_S = 300.0
RETRAINED = "churn-drift-retrained-1"
INFER_EVERY_S = 0.2  # the test's own requests, few beside the story's traffic


@dataclass(frozen=True)
class State:
    """A deployment's status, as far as the story's transitions go."""

    phase: str
    stable: str
    canary: str
    weight: int
    aborted: str = ""
    rolled_back: str = ""


def snapshot(status: dict[str, Any]) -> State:
    return State(
        status.get("phase") or "",
        status.get("stableVersion") or "",
        status.get("canaryVersion") or "",
        int(status.get("canaryWeight") or 0),
        status.get("abortedVersion") or "",
        status.get("rolledBackVersion") or "",
    )


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions") or [] if c.get("type") == kind]
    return found[0] if found else {}


@dataclass
class Observer:
    """What the test sees from outside the sandbox, in order, deduplicated."""

    run: SandboxRun
    versions: tuple[str, ...]
    drifted_world: str = "steady"
    states: list[State] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    drift: list[tuple[str, str]] = field(default_factory=list)  # (Drifted status, severity)
    answers: list[tuple[State, str | None]] = field(default_factory=list)
    processes: dict[int, Any] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    last_request: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)  # the deployment's, latest
    # ModelVersion -> the pods' performance readings from the labels fed back, by time
    performance: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rows: dict[str, list[list[float]]] = field(
        default_factory=lambda: {
            name: example.world(name, 400, 90 + index)[0].round(2).tolist()
            for index, name in enumerate(example.WORLDS)
        }
    )

    def world(self) -> str:
        # as the story does: the traffic drifts once the second version is promoted
        promoted = any(s.phase == "Healthy" and s.stable == "churn-v2" for s in self.states)
        return self.drifted_world if promoted else "steady"

    def observe(self) -> None:
        for name in self.versions:
            if name not in self.ready and self.run.status("modelversions", name).get("phase") == (
                "Ready"
            ):
                self.ready.append(name)
        status = self.run.status("modeldeployments", "churn")
        if status:  # the API stops with the sandbox: keep the last status it gave
            self.status = status
        state = snapshot(status)
        if state.phase and (not self.states or self.states[-1] != state):
            self.states.append(state)
        policy = self.run.status("driftpolicies", "churn-drift")
        verdict = (condition(policy, "Drifted").get("status", ""), policy.get("severity", ""))
        if verdict[0] and (not self.drift or self.drift[-1] != verdict):
            self.drift.append(verdict)
        for report in (policy.get("pods") or {}).values():
            evaluation = report.get("evaluation") or {}
            if evaluation.get("performance") and report.get("modelVersion"):
                readings = self.performance.setdefault(report["modelVersion"], {})
                readings[evaluation["time"]] = evaluation["performance"]
        if time.monotonic() - self.last_request >= INFER_EVERY_S:
            self.last_request = time.monotonic()
            rows = self.rows[self.world()]
            row = rows[len(self.answers) % len(rows)]
            self.answers.append((state, self.run.infer(row)))
        for process in self.run.descendants():
            if process.pid not in self.processes:
                self.processes[process.pid] = process
                self.started.update(names([process]))

    def measured(self, version: str) -> list[dict[str, Any]]:
        """Readings of `version` with a value (at least minLabels labels joined), in time
        order."""
        readings = sorted(self.performance.get(version, {}).items())
        return [r for _, r in readings if r.get("value") is not None]

    def answered_in(self, wanted: State) -> set[str | None]:
        return {version for state, version in self.answers if state == wanted}

    def alive(self) -> None:
        if self.run.process.poll() is not None and self.run.process.returncode != 0:
            raise AssertionError(f"the sandbox failed:\n{self.run.log()}")


def assert_accuracy_near_offline(
    seen: Observer, *versions: tuple[str, float], every: bool = True
) -> None:
    """Each version's pods measured its accuracy on the labels fed back (minLabels 50),
    within the policy's allowed drop of 0.2 from its offline value: its first reading (on
    the steady world), or `every` one."""
    for version, offline in versions:
        measured = seen.measured(version)
        assert measured, (version, seen.performance)
        for reading in measured if every else measured[:1]:
            assert reading["labels"] >= 50 and reading["baseline"] == offline, reading
            assert abs(reading["value"] - offline) < 0.2 and not reading["dropped"], reading


def ordered(states: list[State], *wanted: State) -> bool:
    """Each wanted state was seen, in this order."""
    position = -1
    for state in wanted:
        if state not in states[position + 1 :]:
            return False
        position = states.index(state, position + 1)
    return True


HEALTHY_V1 = State("Healthy", "churn-v1", "", 0)
HEALTHY_V2 = State("Healthy", "churn-v2", "", 0)


def canary_of(states: list[State], version: str) -> list[State]:
    return [s for s in states if s.canary == version and s.weight == 50]


def test_the_default_story_retrains_on_drift_and_ctrl_c_leaves_nothing_behind(tmp_path: Path):
    # --keep: the end state stays up for the test to see; then Ctrl-C (SIGINT) stops it
    run = SandboxRun(tmp_path / "sandbox", "--keep")
    seen = Observer(run, ("churn-v1", "churn-v2", RETRAINED), drifted_world="price-rise")
    healthy_retrained = State("Healthy", RETRAINED, "", 0)
    try:
        run.connect()

        def story_over() -> bool:
            seen.observe()
            seen.alive()
            return len(seen.answered_in(healthy_retrained) - {None}) >= 1 and (
                len([1 for s, v in seen.answers if s == healthy_retrained and v]) >= 5
            )

        wait_until(story_over, STORY_DEADLINE_S, what="the story to end", interval_s=0.05)
        # the verification ran for real (no stand-in): a pod on the sandbox's node whose
        # termination message is what driftline-verify wrote
        for job in ("churn-v1-verify", "churn-v2-verify", f"{RETRAINED}-verify"):
            (pod,) = run.job_pods(job)
            assert pod.spec.node_name == "sandbox"
            terminated = pod.status.container_statuses[0].state.terminated
            assert terminated.exit_code == 0
            assert json.loads(terminated.message)["ok"] is True
        # one retraining Job, whose pod ran the example's retrain.py and answered with its
        # result: the artifact it wrote, served over http
        policy = run.status("driftpolicies", "churn-drift")
        (retraining,) = policy["retrainings"]
        assert retraining["phase"] == "Succeeded" and retraining["parent"] == "churn-v2"
        assert retraining["severity"] == "Medium"
        assert retraining["features"] == ["monthly_charges"], policy.get("lastEvaluation")
        (pod,) = run.job_pods(retraining["job"])
        terminated = pod.status.container_statuses[0].state.terminated
        assert terminated.exit_code == 0
        result = json.loads(terminated.message)
        artifact = result["artifact"]["uri"]
        assert artifact == f"{run.state()['artifacts']}/retrained/{retraining['job']}/model.onnx"
        with urllib.request.urlopen(artifact, timeout=5) as response:
            assert len(response.read()) > 0
        retrained = run.custom_object("modelversions", RETRAINED)
        assert retrained["spec"]["artifact"]["sha256"] == result["artifact"]["sha256"]
        assert retrained["spec"]["lineage"]["parent"] == "churn-v2"
        assert retrained["metadata"]["labels"]["driftline.io/validation"] == "passed"
        label = retrained["spec"]["version"]
        # the drift report of a serving pod is served by its sidecar
        prometheus = run.state()["prometheus"]
        assert (prometheus is not None) == (shutil.which("prometheus") is not None)
        if prometheus is not None:
            # the analysis' built-in gates queried it (two queries per track and
            # measurement), before any query of this test
            assert instant_queries(prometheus) >= 4
            wait_until(
                lambda: scraped_pods(prometheus) >= 2,
                60,
                what="prometheus scraping the serving pods",
                interval_s=0.2,
            )
        run.process.send_signal(signal.SIGINT)
        assert run.process.wait(timeout=60) == 130, run.log()
    finally:
        run.stop()

    assert seen.ready == ["churn-v1", "churn-v2", RETRAINED]
    states = seen.states
    canary_v2, canary_retrained = canary_of(states, "churn-v2"), canary_of(states, RETRAINED)
    assert canary_v2 and canary_retrained, states
    assert ordered(
        states, HEALTHY_V1, canary_v2[0], HEALTHY_V2, canary_retrained[0], healthy_retrained
    ), states
    # drift at Medium (retrain), never High (which would roll back)
    assert ("True", "Medium") in seen.drift, seen.drift
    assert all(severity != "High" for _, severity in seen.drift), seen.drift
    assert not any(s.rolled_back for s in states), states
    # the pods' own answers: each version alone while it was stable, both during a canary
    assert seen.answered_in(HEALTHY_V1) == {"1.0.0"}
    assert {"1.0.0", "2.0.0"} <= seen.answered_in(canary_v2[0])
    assert seen.answered_in(HEALTHY_V2) == {"2.0.0"}
    assert {"2.0.0", label} <= set().union(*(seen.answered_in(s) for s in canary_retrained))
    assert seen.answered_in(healthy_retrained) == {label}
    # the traffic's labels reached the pods that answered: the sidecars measured each
    # stable version's accuracy on them, near its offline value (the price rise leaves it)
    assert_accuracy_near_offline(seen, ("churn-v1", 0.7775), ("churn-v2", 0.785))
    # every process it started is gone: the API, the operator, the pods' containers
    for part in ("apiserver", "driftline.operator", "driftline-serve", "driftline-evaluator"):
        assert any(part in n for n in seen.started), (part, seen.started)
    assert any("driftline-verify" in n for n in seen.started), seen.started
    assert any("retrain.py" in n for n in seen.started), seen.started
    wait_until(lambda: all_gone(list(seen.processes.values())), 30, what="no process left")
    assert not Path(run.state()["podRoot"]).exists()


def test_a_bad_version_is_aborted_by_analysis_and_v1_keeps_answering(tmp_path: Path):
    run = SandboxRun(tmp_path / "sandbox", scenario="bad")
    seen = Observer(run, ("churn-v1", "churn-v2"))
    try:
        run.connect()

        def over() -> bool:
            seen.observe()
            seen.alive()
            return run.process.poll() == 0

        wait_until(over, STORY_DEADLINE_S, what="the story to end", interval_s=0.05)
        status = seen.status
    finally:
        run.stop()
    assert seen.ready == ["churn-v1", "churn-v2"]
    canary = canary_of(seen.states, "churn-v2")
    assert canary and ordered(seen.states, HEALTHY_V1, canary[0]), seen.states
    # analysis failed the canary: an Aborted revision that names the failed gate; the
    # deployment follows the model but never returns to an aborted version, so it is
    # Healthy on v1 again (abortedVersion and Degraded hold only while the desired
    # version is the aborted one, a moment here)
    after = seen.states[seen.states.index(canary[0]) + 1 :]
    assert HEALTHY_V1 in after, seen.states
    assert all(s.stable == "churn-v1" for s in seen.states), seen.states
    (aborted,) = [r for r in status["history"] if r["outcome"] == "Aborted"]
    assert aborted["version"] == "churn-v2"
    assert "success-rate" in aborted["reason"], aborted
    assert status["selectedVersion"] == "churn-v1" and status["stableVersion"] == "churn-v1"
    # the bad version refused requests during its canary; v1 answered before and after
    assert None in set().union(*(seen.answered_in(s) for s in canary)), seen.answers
    # (while the aborted canary's pods go, the Service may still pick one: a refusal
    # then is not v1's; the story's end needs ten answers in a row from v1)
    first_canary = next(i for i, (s, _) in enumerate(seen.answers) if s == canary[0])
    assert {v for s, v in seen.answers[:first_canary] if s == HEALTHY_V1} == {"1.0.0"}
    assert "2.0.0" not in {v for _, v in seen.answers}
    last_canary = max(i for i, (s, _) in enumerate(seen.answers) if s in canary)
    after_abort = [v for _, v in seen.answers[last_canary + 1 :]]
    assert after_abort.count("1.0.0") >= 3, after_abort  # (None: the sandbox stopping)
    # a normal end leaves no process, and the pods' folders are gone (the workdir was the
    # test's own, so it stays)
    wait_until(lambda: all_gone(list(seen.processes.values())), 30, what="no process left")
    assert not Path(run.state()["podRoot"]).exists()


# How long the deployment is given to act on the policy's rollback request once the
# request is in the policy's status (it acts within one reconcile when woken).
ROLLBACK_ACTED_S = 15.0


def test_a_high_drift_rolls_traffic_back_to_v1(tmp_path: Path):
    run = SandboxRun(tmp_path / "sandbox", scenario="rollback")
    seen = Observer(run, ("churn-v1", "churn-v2"), drifted_world="new-market")
    try:
        run.connect()

        def requested() -> bool:
            seen.observe()
            seen.alive()
            request = run.status("driftpolicies", "churn-drift").get("rollback") or {}
            return request.get("version") == "churn-v2"

        wait_until(requested, STORY_DEADLINE_S, what="a rollback request", interval_s=0.05)
        policy = run.status("driftpolicies", "churn-drift")
        assert policy["severity"] == "High" and policy["rollback"]["severity"] == "High"
        assert not policy.get("retrainings")  # the rollback scenario's policy does not retrain
        assert ordered(seen.states, HEALTHY_V1, canary_of(seen.states, "churn-v2")[0], HEALTHY_V2)
        assert seen.answered_in(HEALTHY_V2) == {"2.0.0"}

        def rolled_back() -> bool:
            seen.observe()
            history = run.status("modeldeployments", "churn").get("history") or []
            return any(r["version"] == "churn-v2" and r["outcome"] == "RolledBack" for r in history)

        # the policy's rollback request wakes its target (handlers/register.py)
        wait_until(rolled_back, ROLLBACK_ACTED_S, what="the deployment acting on it")

        def over() -> bool:
            seen.observe()
            seen.alive()
            return run.process.poll() == 0

        wait_until(over, STORY_DEADLINE_S, what="the story to end", interval_s=0.05)
        status = seen.status
    finally:
        run.stop()
    # the follower never chooses a rolled-back version again, so it serves v1 as its
    # desired version: rolledBackVersion and RolledBack=True hold only a moment, the
    # history's RolledBack revision stays
    assert ("True", "High") in seen.drift, seen.drift
    # (v1's first, on the steady world: back on v1 after the rollback, the new market's
    # labels take its accuracy down too)
    assert_accuracy_near_offline(seen, ("churn-v1", 0.7775), every=False)
    (rolled_back,) = [r for r in status["history"] if r["outcome"] == "RolledBack"]
    assert rolled_back["version"] == "churn-v2"
    assert rolled_back["reason"].startswith("DriftRollback"), rolled_back
    assert status["selectedVersion"] == "churn-v1" and status["stableVersion"] == "churn-v1"
    after = seen.states[seen.states.index(HEALTHY_V2) + 1 :]
    assert all(s.stable in ("churn-v2", "churn-v1") for s in after), seen.states
    assert after and after[-1] == HEALTHY_V1, seen.states
    # v1 answers again after the rollback
    last_v2 = max(i for i, (_, v) in enumerate(seen.answers) if v == "2.0.0")
    after_rollback = [v for _, v in seen.answers[last_v2 + 1 :]]
    assert after_rollback.count("1.0.0") >= 3, after_rollback  # (None: the sandbox stopping)
    assert set(after_rollback) <= {"1.0.0", None}
    wait_until(lambda: all_gone(list(seen.processes.values())), 30, what="no process left")
    assert not Path(run.state()["podRoot"]).exists()


def instant_queries(prometheus: str) -> int:
    """Instant queries Prometheus answered, from its own /metrics."""
    with urllib.request.urlopen(f"{prometheus}/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("prometheus_http_requests_total{")
            and 'handler="/api/v1/query"' in line
        )
    )


def scraped_pods(prometheus: str) -> int:
    """Serving pods of the sandbox's namespace that Prometheus scraped successfully."""
    query = urllib.parse.urlencode({"query": 'up{namespace="sandbox"} == 1'})
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=5) as response:
            return len(json.loads(response.read())["data"]["result"])
    except OSError:
        return 0
