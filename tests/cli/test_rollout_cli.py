"""`driftline rollout ...` and `kubectl driftline rollout ...` as real processes against the
real local Kubernetes API, with no operator: the tests write the status the operator
would, and play the operator's part of the request protocol from a thread."""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.apiserver.bootstrap import kubeconfig as kubeconfig_for
from driftline.cli.rollout_request import (
    REQUEST_ANNOTATION,
    annotation_patch,
    new_request,
    pending_request,
    refusal,
)
from driftline.cli.rollout_view import (
    Node,
    age,
    canary_steps,
    describe_step,
    newest_events,
    outcome_line,
    render_plain,
    rollout_tree,
)
from driftline.handlers.kube import Kube
from tests.apiserver_support import RunningApiServer, running_apiserver
from tests.cli.helpers import COMMAND_DEADLINE_S, DRIFTLINE, REPO_ROOT, clean_environment, run
from tests.support import wait_until

API_VERSION, KIND = "driftline.io/v1alpha1", "ModelDeployment"
NAMESPACE = "ml"
KUBECTL = shutil.which("kubectl")
VENV_BIN = Path(sys.executable).parent
NOW = datetime.now(UTC).replace(microsecond=0)
_names = itertools.count()


def without_ages(text: str) -> str:
    """The output with each age ("3m ago") as AGE: ages follow the clock, which the tests
    do not control; `age` itself is tested with a fixed clock below."""
    return re.sub(r"\b\d+[smhd] ago\b", "AGE ago", text)


def ts(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


# A canary rollout at its second step, as the rollout engine would write it.
CANARY_STATUS: dict[str, Any] = {
    "phase": "Progressing",
    "stableVersion": "fraud-v1",
    "canaryVersion": "fraud-v2",
    "canaryWeight": 50,
    "currentStep": 1,
    "stepStartedAt": ts(3),
    "rolloutStartedAt": ts(10),
    "abortedVersion": "fraud-v0",
    "pausedByRequest": True,
    "handledRequest": "0" * 32,
    "verdicts": [
        {
            "gate": "step-0",
            "version": "fraud-v2",
            "verdict": "Passed",
            "reason": "p99 120ms <= 250ms",
            "at": ts(4),
        },
        {
            "gate": "step-1",
            "version": "fraud-v2",
            "verdict": "Running",
            "reason": "2 of 3 measurements",
            "at": ts(1),
        },
        {
            "gate": "step-0",
            "version": "fraud-v0",
            "verdict": "Failed",
            "reason": "old rollout",
            "at": ts(90),
        },
    ],
    "history": [
        {
            "version": f"fraud-h{i}",
            "outcome": "Superseded",
            "reason": f"reason-{i}",
            "at": ts(100 + i),
        }
        for i in range(6)
    ],
    "tracks": {
        "stable": {
            "version": "fraud-v1",
            "deployment": "fraud-stable",
            "replicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
        },
        "canary": {
            "version": "fraud-v2",
            "deployment": "fraud-canary",
            "replicas": 2,
            "readyReplicas": 1,
            "availableReplicas": 1,
        },
    },
    "gpus": {"stable": 3, "canary": 2},
    "url": "http://fraud.ml.svc.cluster.local:8080",
    "conditions": [
        {
            "type": t,
            "status": s,
            "reason": r,
            "message": f"{t} says {r}",
            "lastTransitionTime": ts(5),
        }
        for t, s, r in [
            ("Ready", "True", "Serving"),
            ("Progressing", "True", "CanaryStep"),
            ("Degraded", "False", "AllTracksReady"),
            ("Available", "True", "MinimumReplicasAvailable"),
            ("UpToDate", "False", "RolloutInProgress"),
            ("Reconciled", "True", "Applied"),
            ("Supported", "True", "Supported"),
        ]
    ],
}
CANARY_STEPS = [
    {"weight": 10, "pauseSeconds": 60},
    {"weight": 50, "pauseSeconds": 0},
    {"weight": 100, "analysis": False},
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    """One local API for the module (each test makes its own ModelDeployment)."""
    path = tmp_path_factory.mktemp("rollout-api") / "kubeconfig"
    with running_apiserver(kubeconfig_path=path, crds=REPO_ROOT / "crds") as running:
        running.create("", "v1", "namespaces", None, {"metadata": {"name": NAMESPACE}})
        yield running


@pytest.fixture
def kube(api: RunningApiServer) -> Iterator[Kube]:
    client = api.api_client()
    yield Kube(client)
    client.close()


@pytest.fixture
def env(api: RunningApiServer, tmp_path: Path) -> dict[str, str]:
    assert api.kubeconfig_path is not None
    return clean_environment(tmp_path, KUBECONFIG=str(api.kubeconfig_path))


def driftline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([*DRIFTLINE, "rollout", *args], env=env, cwd=REPO_ROOT)


def make_deployment(
    kube: Kube, status: dict[str, Any] | None, *, strategy: dict[str, Any] | None = None
) -> dict[str, Any]:
    name = f"fraud-{next(_names)}"
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {"team": "risk"}},
        "spec": {
            "modelVersion": "fraud-v2",
            "replicas": 3,
            "strategy": strategy or {"type": "Canary", "canary": {"steps": CANARY_STEPS}},
        },
    }
    created = kube.create(body)
    if status is not None:
        # as the operator writes it: a merge patch of the status subresource
        patched = kube.patch_status(API_VERSION, KIND, NAMESPACE, name, status)
        assert patched is not None
        return patched
    return created


def read(kube: Kube, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, KIND, NAMESPACE, name)
    assert obj is not None
    return obj


def written_request(obj: dict[str, Any]) -> dict[str, Any] | None:
    text = (obj["metadata"].get("annotations") or {}).get(REQUEST_ANNOTATION)
    return None if text is None else json.loads(text)


def post_event(kube: Kube, obj: dict[str, Any], reason: str, minutes_ago: float) -> None:
    kube.post_event(obj, "Normal", reason, f"message of {reason}", ts(minutes_ago))


class FakeOperator:
    """The operator's half of the protocol: once a request appears, record it as handled
    (and move the rollout on), in one status write."""

    def __init__(self, kube: Kube, name: str, new_status: dict[str, Any]) -> None:
        self.kube, self.name, self.new_status = kube, name, new_status
        self.seen: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._act, daemon=True)

    def _act(self) -> None:
        try:
            self.seen = wait_until(
                lambda: written_request(read(self.kube, self.name)),
                COMMAND_DEADLINE_S,
                what="the rollout request annotation",
            )
            self.kube.patch_status(
                API_VERSION,
                KIND,
                NAMESPACE,
                self.name,
                {**self.new_status, "handledRequest": self.seen["id"]},
            )
        except BaseException as error:
            self.error = error

    def __enter__(self) -> FakeOperator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=COMMAND_DEADLINE_S)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


# --- status -------------------------------------------------------------------------------


def test_status_draws_every_field_of_a_canary_rollout(kube, env):
    obj = make_deployment(kube, CANARY_STATUS)
    name = obj["metadata"]["name"]
    for i in range(7):
        post_event(kube, obj, f"Reason{i}", minutes_ago=60 - i)  # Reason6 is the newest
    result = driftline(env, "status", name, "-n", NAMESPACE)
    assert result.returncode == 0, result.stderr
    out = without_ages(result.stdout)
    lines = out.splitlines()
    assert lines[0] == f"ModelDeployment {name}"
    assert "\x1b[" not in out  # plain text when stdout is not a terminal
    for expected in [
        "  Namespace: ml",
        "  Phase: Progressing",
        "  Paused: by request (driftline rollout resume to continue)",
        "  Strategy: Canary",
        "  Desired version: fraud-v2 (spec.modelVersion)",
        "  Stable: fraud-v1 (weight 50%)",
        "  Canary: fraud-v2 (weight 50%)",
        "  Step: 2 of 3",
        "    weight 50%, pause until promoted, analysis",
        f"    started {ts(3)} (AGE ago)",
        f"    gate step-1: Running - 2 of 3 measurements, at {ts(1)} (AGE ago)",
        f"    gate step-0: Passed - p99 120ms <= 250ms, at {ts(4)} (AGE ago)",
        f"  Rollout started: {ts(10)} (AGE ago)",
        "  Aborted: fraud-v0 (driftline rollout retry to try it again)",
        "  Tracks",
        "    stable: fraud-v1, Deployment fraud-stable, replicas 3/3 ready, 3 available, GPUs 3",
        "    canary: fraud-v2, Deployment fraud-canary, replicas 1/2 ready, 1 available, GPUs 2",
        "  URL: http://fraud.ml.svc.cluster.local:8080",
        "  Conditions",
        "    Ready: True (Serving) Ready says Serving",
        "    Progressing: True (CanaryStep) Progressing says CanaryStep",
        "    Degraded: False (AllTracksReady) Degraded says AllTracksReady",
        "    Available: True (MinimumReplicasAvailable) Available says MinimumReplicasAvailable",
        "    UpToDate: False (RolloutInProgress) UpToDate says RolloutInProgress",
        "    Reconciled: True (Applied) Reconciled says Applied",
        "    Supported: True (Supported) Supported says Supported",
        "  History (last 5 of 6)",
        "  Events (newest first)",
        f"  Last handled request: {'0' * 32}",
    ]:
        assert expected in lines, f"{expected!r} not in:\n{out}"
    # a verdict of another version's rollout is not this rollout's
    assert "old rollout" not in out
    # the history: the first 5 (newest first), not the sixth
    history = [line for line in lines if "Superseded" in line]
    assert history == [
        f"    fraud-h{i} Superseded - reason-{i}, at {ts(100 + i)} (AGE ago)" for i in range(5)
    ]
    # the events: the 5 newest, newest first
    events = [line.strip() for line in lines if "Normal Reason" in line]
    assert events == [f"AGE ago Normal Reason{6 - i}: message of Reason{6 - i}" for i in range(5)]


def test_status_of_a_blue_green_rollout_shows_the_preview(kube, env):
    obj = make_deployment(
        kube,
        {
            "phase": "Progressing",
            "stableVersion": "fraud-v1",
            "previewVersion": "fraud-v2",
            "activeTrack": "preview",
            "previousVersion": "fraud-v0",
            "switchedAt": ts(2),
            "verdicts": [
                {"gate": "pre-promotion", "version": "fraud-v2", "verdict": "Passed", "at": ts(3)},
                {
                    "gate": "post-promotion",
                    "version": "fraud-v2",
                    "verdict": "Failed",
                    "reason": "error rate 5%",
                    "at": ts(1),
                },
            ],
            "tracks": {
                "preview": {
                    "version": "fraud-v2",
                    "deployment": "fraud-preview",
                    "replicas": 3,
                    "readyReplicas": 3,
                    "availableReplicas": 3,
                }
            },
        },
        strategy={"type": "BlueGreen", "blueGreen": {"autoPromote": False}},
    )
    result = driftline(env, "status", obj["metadata"]["name"], "-n", NAMESPACE)
    assert result.returncode == 0, result.stderr
    lines = without_ages(result.stdout).splitlines()
    for expected in [
        "  Strategy: BlueGreen",
        "  Stable: fraud-v1 (weight 0%)",
        "  Preview: fraud-v2 (weight 100%)",
        "  Active track: preview",
        "  Previous: fraud-v0 (kept until scale-down)",
        f"  Switched: {ts(2)} (AGE ago)",
        f"    gate pre-promotion: Passed, at {ts(3)} (AGE ago)",
        f"    gate post-promotion: Failed - error rate 5%, at {ts(1)} (AGE ago)",
        "    preview: fraud-v2, Deployment fraud-preview, replicas 3/3 ready, 3 available",
        "    none",  # no Events yet
    ]:
        assert expected in lines, f"{expected!r} not in:\n{result.stdout}"


def test_status_defaults_to_the_kubeconfig_context_namespace(api, kube, tmp_path):
    obj = make_deployment(kube, {"phase": "Healthy", "stableVersion": "fraud-v2"})
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig_for(api.url, namespace=NAMESPACE)))
    result = driftline(
        clean_environment(tmp_path, KUBECONFIG=str(config)), "status", obj["metadata"]["name"]
    )
    assert result.returncode == 0, result.stderr
    assert "  Namespace: ml" in result.stdout.splitlines()
    assert "  Phase: Healthy" in result.stdout.splitlines()
    # the context's default namespace is "default", where there is no such object
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(yaml.safe_dump(kubeconfig_for(api.url)))
    missing = driftline(
        clean_environment(tmp_path, KUBECONFIG=str(elsewhere)), "status", obj["metadata"]["name"]
    )
    assert missing.returncode == 1
    assert (
        f'ModelDeployment "{obj["metadata"]["name"]}" not found in namespace "default"'
        in missing.stderr
    )


def read_lines_into(stream: Any, into: list[str]) -> threading.Thread:
    def pump() -> None:
        for line in stream:
            into.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def test_status_watch_redraws_on_each_change_and_ends_on_ctrl_c(kube, env):
    obj = make_deployment(
        kube,
        {
            "phase": "Progressing",
            "stableVersion": "fraud-v1",
            "canaryVersion": "fraud-v2",
            "canaryWeight": 10,
            "currentStep": 0,
        },
    )
    name = obj["metadata"]["name"]
    process = subprocess.Popen(
        [*DRIFTLINE, "rollout", "status", name, "-n", NAMESPACE, "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    lines: list[str] = []
    reader = read_lines_into(process.stdout, lines)
    try:
        wait_until(
            lambda: "  Canary: fraud-v2 (weight 10%)\n" in lines,
            COMMAND_DEADLINE_S,
            what="the first drawing",
        )
        kube.patch_status(
            API_VERSION, KIND, NAMESPACE, name, {"canaryWeight": 50, "currentStep": 1}
        )
        wait_until(
            lambda: "  Canary: fraud-v2 (weight 50%)\n" in lines,
            COMMAND_DEADLINE_S,
            what="the redrawing",
        )
        assert "  Step: 2 of 3\n" in lines
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=COMMAND_DEADLINE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=COMMAND_DEADLINE_S)
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()
    assert lines.count(f"ModelDeployment {name}\n") == 2


def test_status_watch_ends_at_its_timeout(kube, env):
    obj = make_deployment(kube, {"phase": "Healthy", "stableVersion": "fraud-v2"})
    result = driftline(
        env, "status", obj["metadata"]["name"], "-n", NAMESPACE, "--watch", "--timeout", "1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines().count("  Phase: Healthy") == 1


# --- requests ----------------------------------------------------------------------------

IN_PROGRESS = {
    "phase": "Progressing",
    "stableVersion": "fraud-v1",
    "canaryVersion": "fraud-v2",
    "canaryWeight": 10,
    "currentStep": 0,
    "abortedVersion": "fraud-v0",
}


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["promote"], "promote"),
        (["promote", "--full"], "promote-full"),
        (["abort"], "abort"),
        (["retry"], "retry"),
        (["pause"], "pause"),
        (["resume"], "resume"),
    ],
)
def test_a_request_writes_one_annotation_and_waits_for_the_operator(kube, env, args, action):
    before = make_deployment(kube, IN_PROGRESS)
    name = before["metadata"]["name"]
    with FakeOperator(kube, name, {"canaryWeight": 50, "currentStep": 1}) as operator:
        result = driftline(env, *args, name, "-n", NAMESPACE)
    assert result.returncode == 0, result.stderr
    after = read(kube, name)
    request = written_request(after)
    assert request is not None and operator.seen == request
    assert set(request) == {"id", "action", "requestedAt"}
    assert request["action"] == action
    assert uuid.UUID(hex=request["id"]).hex == request["id"] and len(request["id"]) == 32
    requested_at = datetime.strptime(request["requestedAt"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(requested_at.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=10)
    # nothing else changed: the spec byte for byte, the other annotations, the generation
    assert json.dumps(after["spec"]) == json.dumps(before["spec"])
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["annotations"] == {
        "team": "risk",
        REQUEST_ANNOTATION: after["metadata"]["annotations"][REQUEST_ANNOTATION],
    }
    assert (
        f"requested {action} of ModelDeployment ml/{name} (request {request['id']})"
        in result.stdout
    )
    assert (
        "done: phase Progressing, step 2 of 3, canary fraud-v2 at 50%, stable fraud-v1"
        in result.stdout
    )


def test_a_request_nobody_acts_on_times_out_with_a_message(kube, env):
    obj = make_deployment(kube, IN_PROGRESS)
    name = obj["metadata"]["name"]
    result = driftline(env, "abort", name, "-n", NAMESPACE, "--timeout", "1")
    assert result.returncode == 1
    request = written_request(read(kube, name))
    assert request is not None and request["action"] == "abort"
    assert f"the operator did not act on request {request['id']} (abort) within 1s" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_wait_returns_at_once_and_a_later_request_says_it_replaces_it(kube, env):
    obj = make_deployment(kube, IN_PROGRESS)
    name = obj["metadata"]["name"]
    first = driftline(env, "pause", name, "-n", NAMESPACE, "--no-wait")
    assert first.returncode == 0, first.stderr
    assert "waiting" not in first.stdout
    paused = written_request(read(kube, name))
    assert paused is not None and paused["action"] == "pause"
    second = driftline(env, "resume", name, "-n", NAMESPACE, "--no-wait")
    assert second.returncode == 0, second.stderr
    resumed = written_request(read(kube, name))
    assert resumed is not None and resumed["action"] == "resume" and resumed["id"] != paused["id"]
    assert (
        f"replaces request {paused['id']} (pause), which the operator had not acted on"
        in second.stderr
    )


@pytest.mark.parametrize(
    ("command", "status", "message"),
    [
        (
            "retry",
            {"phase": "Healthy", "stableVersion": "fraud-v1"},
            "nothing to retry: ModelDeployment ml/{name} shows no aborted rollout",
        ),
        (
            "promote",
            {"phase": "Healthy", "stableVersion": "fraud-v1", "abortedVersion": "fraud-v2"},
            "nothing to promote: ModelDeployment ml/{name} has no rollout in progress (it serves fraud-v1)",
        ),
        ("promote", None, "nothing to promote"),
    ],
)
def test_a_pointless_request_is_refused_without_writing(kube, env, command, status, message):
    before = make_deployment(kube, status)
    name = before["metadata"]["name"]
    result = driftline(env, command, name, "-n", NAMESPACE)
    assert result.returncode == 1
    assert message.format(name=name) in result.stderr
    after = read(kube, name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert written_request(after) is None


def test_a_missing_deployment_is_one_line_and_exit_1(env):
    for args in (["status", "ghost"], ["promote", "ghost"], ["retry", "ghost", "--no-wait"]):
        result = driftline(env, *args, "-n", NAMESPACE)
        assert result.returncode == 1, args
        assert result.stderr.strip().splitlines() == [
            'Error: ModelDeployment "ghost" not found in namespace "ml"'
        ]


def test_a_forbidden_request_says_so_and_writes_nothing(api, kube, env):
    obj = make_deployment(kube, IN_PROGRESS)
    name = obj["metadata"]["name"]
    fault = api.call(
        api.faults.inject, 403, verbs=frozenset({"patch"}), resource="modeldeployments"
    )
    try:
        result = driftline(env, "abort", name, "-n", NAMESPACE)
    finally:
        api.call(api.faults.remove, fault)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: forbidden to patch ModelDeployment ml/{name}")
    assert "Manual control" in result.stderr and "Traceback" not in result.stderr
    assert written_request(read(kube, name)) is None


def test_no_credentials_is_a_clear_message(tmp_path):
    result = driftline(clean_environment(tmp_path), "status", "fraud", "-n", NAMESPACE)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: no Kubernetes credentials")
    assert "Traceback" not in result.stderr


def test_an_unreachable_api_is_a_clear_message(tmp_path):
    from tests.cli.helpers import listening_socket, write_kubeconfig

    with listening_socket() as port:
        pass  # the port is closed again: nothing answers there
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    result = driftline(
        clean_environment(tmp_path, KUBECONFIG=str(config)), "status", "fraud", "-n", NAMESPACE
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot reach the Kubernetes API")
    assert "Traceback" not in result.stderr


# --- the kubectl plugin ------------------------------------------------------------------


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.skipif(
    not (VENV_BIN / "kubectl-driftline").exists(), reason="the package is not installed here"
)
def test_kubectl_runs_the_plugin(api, kube, tmp_path):
    assert KUBECTL is not None and api.kubeconfig_path is not None
    obj = make_deployment(kube, IN_PROGRESS)
    name = obj["metadata"]["name"]
    env = clean_environment(
        tmp_path,
        KUBECONFIG=str(api.kubeconfig_path),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    status = run([KUBECTL, "driftline", "rollout", "status", name, "-n", NAMESPACE], env=env)
    assert status.returncode == 0, status.stderr
    assert f"ModelDeployment {name}" in status.stdout
    assert "  Canary: fraud-v2 (weight 10%)" in status.stdout.splitlines()
    promote = run(
        [KUBECTL, "driftline", "rollout", "promote", name, "-n", NAMESPACE, "--no-wait"], env=env
    )
    assert promote.returncode == 0, promote.stderr
    request = written_request(read(kube, name))
    assert request is not None and request["action"] == "promote"
    assert f"(request {request['id']})" in promote.stdout
    usage = run([KUBECTL, "driftline", "rollout", "--help"], env=env)
    assert usage.returncode == 0 and "Usage: kubectl driftline rollout" in usage.stdout


# --- the pure parts ----------------------------------------------------------------------


def test_request_annotation_is_the_protocol():
    request = new_request("promote-full", datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), "ab" * 16)
    assert annotation_patch(request) == {
        "annotations": {
            REQUEST_ANNOTATION: '{"id":"abababababababababababababababab","action":"promote-full",'
            '"requestedAt":"2026-01-02T03:04:05Z"}'
        }
    }
    with pytest.raises(ValueError, match="unknown rollout action 'skip'"):
        new_request("skip", NOW)  # type: ignore[arg-type]


def test_pending_request_is_the_one_not_yet_handled():
    written = {"metadata": {"annotations": {REQUEST_ANNOTATION: '{"id": "a1", "action": "pause"}'}}}
    assert pending_request(written) == {"id": "a1", "action": "pause"}
    assert pending_request({**written, "status": {"handledRequest": "a1"}}) is None
    assert pending_request({"metadata": {"annotations": {REQUEST_ANNOTATION: "not json"}}}) is None
    assert pending_request({"metadata": {}}) is None


def test_refusals_follow_the_status():
    base = {"metadata": {"namespace": "ml", "name": "m"}}
    assert refusal("abort", base) is None
    assert refusal("pause", base) is None
    assert refusal("promote", {**base, "status": {"previewVersion": "v2"}}) is None
    assert refusal("promote-full", {**base, "status": {"canaryVersion": "v2"}}) is None
    assert refusal("promote-full", base) is not None
    assert refusal("retry", {**base, "status": {"abortedVersion": "v2"}}) is None


def test_steps_default_to_the_apis_and_describe_their_pause():
    assert [s["weight"] for s in canary_steps({})] == [10, 50, 100]
    assert describe_step({"weight": 10}) == "weight 10%, no pause, analysis"
    assert describe_step({"weight": 10, "pauseSeconds": 30, "analysis": False}) == (
        "weight 10%, pause 30s, no analysis"
    )


def test_events_of_an_earlier_object_of_the_same_name_are_left_out():
    def event(uid: str, minute: int) -> dict[str, Any]:
        return {"involvedObject": {"uid": uid}, "lastTimestamp": f"2026-01-01T00:{minute:02d}:00Z"}

    events = [event("old", 9), event("new", 1), event("new", 3), event("", 2)]
    assert newest_events(events, "new", limit=2) == [events[2], events[3]]


def test_a_status_field_this_client_does_not_know_still_shows():
    obj = {
        "metadata": {"name": "m", "namespace": "ml"},
        "spec": {"modelVersion": "v2"},
        "status": {"phase": "Healthy", "stableVersion": "v2", "fieldFromTheFuture": {"x": 1}},
    }
    text = render_plain(rollout_tree(obj, [], NOW))
    assert "  Phase: Healthy\n" in text and "  Stable: v2 (weight 100%)\n" in text
    assert outcome_line(obj) == "phase Healthy, stable v2"
    assert (
        render_plain(Node("a", children=(Node("b", children=(Node("c"),)),))) == "a\n  b\n    c\n"
    )


def test_ages_read_like_kubectls():
    assert [age(s) for s in (-5, 0, 119, 120, 7199, 7200, 172799, 172800)] == [
        "0s",
        "0s",
        "119s",
        "2m",
        "119m",
        "2h",
        "47h",
        "2d",
    ]


def test_on_a_terminal_status_is_a_rich_tree(kube, env):
    obj = make_deployment(kube, IN_PROGRESS)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*DRIFTLINE, "rollout", "status", obj["metadata"]["name"], "-n", NAMESPACE],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "160"},
        cwd=REPO_ROOT,
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal is closed once the process is gone
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert process.wait(timeout=COMMAND_DEADLINE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=COMMAND_DEADLINE_S)
    os.close(controller)
    drawn = b"".join(chunks).decode()
    assert "\x1b[" in drawn  # styled
    assert "├── " in drawn and "└── " in drawn  # rich's tree guides
    assert "Canary: fraud-v2 (weight 10%)" in drawn


def test_the_rollout_commands_need_no_operator():
    # a workstation installs driftline[rollout]: the kubernetes client and rich, never kopf
    from tests.test_import_structure import declared_distributions, is_within, reachable

    for start in ("driftline.cli.rollout", "driftline.cli.rollout_plugin"):
        reached = reachable(start)
        assert not [n for n in reached if is_within(n, "kopf") or is_within(n, "kmock")], start
    assert declared_distributions("rollout") >= {"kubernetes", "rich"}
    assert declared_distributions("rollout").isdisjoint({"kopf", "kmock", "onnxruntime", "numpy"})


def test_driftline_lists_the_rollout_commands(env):
    listed = run([*DRIFTLINE, "--help"], env=env)
    assert listed.returncode == 0 and "rollout" in listed.stdout
    group = driftline(env, "--help")
    assert group.returncode == 0
    for command in ("status", "promote", "abort", "retry", "pause", "resume"):
        assert f"  {command} " in group.stdout, command
