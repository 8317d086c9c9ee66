"""Benchmark: how long the drift loop takes (issue 16).

From drift onset to `Drifted=True` on the DriftPolicy, and to traffic back on the last good
version, against the policy's evaluation interval S (goal: at most 2*S + 10 s).

Real parts only, each run from scratch: the local Kubernetes API (in this process, on a
thread), the real operator (`python -m driftline.operator`, a subprocess, as the admin:
the API runs without RBAC), ModelVersions churn-v1 and churn-v2 verified by the real
`driftline-verify` through the Job stand-in, a ModelDeployment promoted from churn-v1 to
churn-v2 by a two-step canary, and one serving pod of churn-v2 made of processes: the
real `driftline-serve` and the real `driftline-evaluator` (loop_pods.py), with its Pod
object so that the operator keeps its report.

The pod gets steady traffic from the reference distribution until a clean evaluation has
been reported; then, at a chosen phase of the sidecar's evaluation cycle, the traffic
moves every feature by `--shift` standard deviations (drift onset, t0). The bench polls
the API until the DriftPolicy says Drifted=True and until the ModelDeployment has
stableVersion churn-v1 with rolledBackVersion churn-v2 and the stable Deployment's
driftline.io/model-version annotation says churn-v1.

Run: .venv/bin/python bench/drift/bench_drift_loop.py [--interval S ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# the test helpers are reused as they are: the repository root (package `tests`) and the
# operator harness's folder (imported by module name, as its conftest does)
sys.path[:0] = [str(HERE), str(REPO), str(REPO / "tests" / "operator")]

import kubernetes  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
from loop_pods import PodSpec, ProcessPod, Traffic  # noqa: E402
from operator_harness import (  # noqa: E402
    NAMESPACE,
    Cluster,
    ModelFile,
    OperatorProcess,
    model_deployment,
    verified_version,
    wait_for,
)
from pydantic import ValidationError  # noqa: E402

from driftline.api.driftpolicy import DriftPolicy  # noqa: E402
from driftline.render import labels  # noqa: E402
from driftline_serving.drift import ProfileBuilder, Schema, save_profile  # noqa: E402
from driftline_serving.drift.prediction import top_class_and_score  # noqa: E402
from driftline_serving.examples.models import MLP_INPUT_NAME, MLP_INPUTS  # noqa: E402
from tests.apiserver_support import running_apiserver  # noqa: E402
from tests.support import wait_until  # noqa: E402

DEPLOYMENT, POLICY, POD = "churn", "churn-drift", "churn-stable-0"
GOOD, BAD = "churn-v1", "churn-v2"
POLL_S = 0.05
FEATURES = [f"x{i}" for i in range(MLP_INPUTS)]


@dataclass(frozen=True)
class Settings:
    window_size: int
    min_samples: int
    shift_sd: float
    rows_per_request: int
    pause_s: float
    timeout_s: float  # for the drift verdict and the rollback request
    back_timeout_s: float  # for traffic back, from the onset


@dataclass(frozen=True)
class RunResult:
    interval_s: int
    run: int
    phase_s: float  # onset, after the clean evaluation was seen
    drifted_s: float
    requested_s: float
    back_s: float | None  # None: not back within back_timeout_s
    back_timeout_s: float
    severity: str
    samples: int  # in the evaluation that saw the drift
    rows_per_s: float  # traffic before the onset
    poll_median_s: float
    poll_max_s: float
    false_alarms: int  # Drifted=True seen before the onset (skipped, waited out)

    @property
    def goal_s(self) -> float:
        return 2 * self.interval_s + 10


# ----------------------------------------------------------------------------- the scenario


def reference_profile(model: ModelFile, directory: Path, rows: int = 20_000) -> tuple[Path, str]:
    """A profile of standard-normal inputs with the model's predictions and confidences
    (real onnxruntime): without outputs in the profile no severity above Medium exists,
    since High needs the outputs to drift (serving-image/driftline_serving/drift/decisions.py)."""
    data = np.random.default_rng(5).normal(size=(rows, MLP_INPUTS))
    session = onnxruntime.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    scores = session.run(None, {MLP_INPUT_NAME: data.astype(np.float32)})[0]
    classes, confidence = top_class_and_score(scores)
    builder = ProfileBuilder(Schema.of([(name, "numeric") for name in FEATURES]))
    builder.add(
        {name: data[:, i] for i, name in enumerate(FEATURES)}, classes.astype(str), confidence
    )
    path = directory / "reference.dlprofile"
    return path, save_profile(builder.finish(), path)


def drift_policy(interval_s: int, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "targetRef": {"name": DEPLOYMENT},
            "window": {
                "intervalSeconds": interval_s,
                "size": settings.window_size,
                "minSamples": settings.min_samples,
            },
            # No cooldown: with the default (3600 s), one false alarm on the reference
            # traffic before the onset (the significance allows 5% per evaluation) would
            # keep the sidecar from confirming the real drift for an hour.
            "hysteresis": {"consecutiveWindows": 1, "cooldownSeconds": 0},
            "actions": [
                {"severity": "Low", "action": "Alert"},
                {"severity": "High", "action": "Rollback"},
            ],
        },
    }


def promote_to_bad_version(cluster: Cluster, work: Path, model: ModelFile) -> None:
    for name in (GOOD, BAD):
        # driftline-verify prints its report; the Job's termination message carries it
        with contextlib.redirect_stdout(io.StringIO()):
            verified_version(cluster, work, name, model)
        wait_for(
            lambda name=name: cluster.status("modelversions", name).get("phase") == "Ready",
            what=f"{name} Ready",
        )
    strategy = {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50}, {"weight": 100}]},
        "analysis": {"driftGate": False},
    }
    cluster.create(
        "modeldeployments", model_deployment(DEPLOYMENT, GOOD, replicas=2, strategy=strategy)
    )

    def healthy_on(version: str) -> bool:
        status = cluster.status("modeldeployments", DEPLOYMENT)
        return status.get("phase") == "Healthy" and status.get("stableVersion") == version

    wait_for(lambda: healthy_on(GOOD), timeout=60, what=f"serving {GOOD}")
    cluster.patch("modeldeployments", DEPLOYMENT, {"spec": {"modelVersion": BAD}})
    wait_for(lambda: healthy_on(BAD), timeout=60, what=f"{BAD} promoted")


def start_operator(operator: OperatorProcess, attempts: int = 3) -> None:
    """Start it and wait for its liveness endpoint. Its two ports are picked free a moment
    before it binds them; on a shared machine another process can take one first, so a
    start that failed on a taken port is tried again."""
    for _ in range(attempts):
        operator.start()
        process = operator.process
        assert process is not None

        def answering(process: subprocess.Popen[bytes] = process) -> bool:
            if process.poll() is not None:
                return True  # exited: looked at below
            try:
                return operator.healthz() == 200
            except OSError:
                return False

        wait_until(answering, 60.0, what="the operator's /healthz", interval_s=0.1)
        if process.poll() is None:
            return
        if "Address already in use" not in operator.log():
            raise RuntimeError(f"the operator exited ({process.returncode}):\n{operator.log()}")
    raise RuntimeError(f"the operator found its ports taken {attempts} times")


def drifted_condition(policy_status: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Drifted" and c["status"] == "True"
        for c in policy_status.get("conditions") or []
    )


def own_report(policy_status: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = (policy_status.get("pods") or {}).get(POD) or {}
    return report


def clean_evaluation_time(cluster: Cluster, window_size: int) -> str | None:
    """The time of the pod's last evaluation when it was clean on a full window and the
    policy is not Drifted; None otherwise."""
    status = cluster.status("driftpolicies", POLICY)
    evaluation = own_report(status).get("evaluation") or {}
    if (
        drifted_condition(status)
        or evaluation.get("drifted") is not False
        or int(evaluation.get("samples") or 0) < window_size
    ):
        return None
    return str(evaluation.get("time"))


def traffic_back(cluster: Cluster) -> bool:
    status = cluster.status("modeldeployments", DEPLOYMENT)
    if (status.get("stableVersion"), status.get("rolledBackVersion")) != (GOOD, BAD):
        return False
    stable = cluster.apps.read_namespaced_deployment(f"{DEPLOYMENT}-stable", NAMESPACE)
    annotations = stable.metadata.annotations or {}
    return bool(annotations.get(labels.MODEL_VERSION) == GOOD)


def settle_and_pick_onset(
    cluster: Cluster, settings: Settings, phase_s: float
) -> tuple[float, int]:
    """Wait for a clean evaluation on a full window, then `phase_s` more (the onset's place
    in the sidecar's cycle: the evaluation was seen just after it ran). Returns the moment
    to switch the traffic and how many false alarms were waited out on the way."""
    false_alarms = 0
    while True:
        last_time = wait_for(
            lambda: clean_evaluation_time(cluster, settings.window_size),
            timeout=settings.timeout_s,
            what="a clean evaluation on a full window",
        )
        # the next evaluation: the sidecar reports each one with a new time
        wait_for(
            lambda last_time=last_time: (
                own_report(cluster.status("driftpolicies", POLICY))
                .get("evaluation", {})
                .get("time")
                != last_time
            ),
            timeout=settings.timeout_s,
            what="the next evaluation",
        )
        seen = time.monotonic()
        if clean_evaluation_time(cluster, settings.window_size) is not None:
            return seen + phase_s, false_alarms
        false_alarms += 1  # a false alarm on reference traffic: wait for clean again


def one_run(
    interval_s: int,
    run: int,
    phase_s: float,
    settings: Settings,
    model: ModelFile,
    profile: tuple[Path, str],
    work: Path,
) -> RunResult:
    kubeconfig = work / "kubeconfig"
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(running_apiserver(kubeconfig_path=kubeconfig, crds=REPO / "crds"))
        cluster = Cluster(api)
        cluster.core.create_namespace({"metadata": {"name": NAMESPACE}})
        # the operator's own default recheck (the harness shortens it for tests)
        operator = OperatorProcess(
            kubeconfig, work, extra_env={"DRIFTLINE_BLOCKED_RECHECK_SECONDS": "10"}
        )
        stack.callback(operator.stop)
        start_operator(operator)
        promote_to_bad_version(cluster, work, model)
        cluster.create("driftpolicies", drift_policy(interval_s, settings))
        # The Pod object the kubelet would report: the operator prunes reports of pods
        # that do not exist.
        cluster.core.create_namespaced_pod(
            NAMESPACE,
            {
                "metadata": {"name": POD, "labels": labels.track_selector(DEPLOYMENT, "stable")},
                "spec": {"containers": [{"name": "server", "image": "x"}]},
            },
        )
        pod = ProcessPod(
            PodSpec(POD, NAMESPACE, POLICY, BAD, "stable", model.path, model.sha256, *profile),
            work,
            kubeconfig,
        )
        stack.callback(pod.stop)
        pod.start()
        traffic = Traffic(
            pod,
            rows_per_request=settings.rows_per_request,
            pause_s=settings.pause_s,
            shift_sd=settings.shift_sd,
            seed=1000 * interval_s + run,
        )
        stack.callback(traffic.stop)
        traffic.start()
        steady_from, rows_from = time.monotonic(), traffic.rows_sent
        switch_at, false_alarms = settle_and_pick_onset(cluster, settings, phase_s)
        rows_per_s = (traffic.rows_sent - rows_from) / (time.monotonic() - steady_from)
        while time.monotonic() < switch_at:  # placing the onset, not synchronising
            time.sleep(min(0.01, max(0.0, switch_at - time.monotonic())))
        traffic.shift()
        result = measure(cluster, traffic, settings)
        if traffic.errors:
            raise RuntimeError(f"requests failed: {traffic.errors}")
    return RunResult(
        interval_s=interval_s,
        run=run,
        phase_s=round(phase_s, 2),
        drifted_s=result.drifted_s or 0.0,
        requested_s=result.requested_s or 0.0,
        back_s=result.back_s,
        back_timeout_s=settings.back_timeout_s,
        severity=result.severity,
        samples=result.samples,
        rows_per_s=round(rows_per_s, 1),
        poll_median_s=round(statistics.median(result.polls), 3),
        poll_max_s=round(max(result.polls), 3),
        false_alarms=false_alarms,
    )


def what_the_cluster_says(cluster: Cluster) -> str:
    """The statuses the outcomes are read from, for a run that did not finish."""
    body = cluster.get("driftpolicies", POLICY) or {}
    policy = body.get("status") or {}
    deployment = cluster.status("modeldeployments", DEPLOYMENT)
    try:
        DriftPolicy.model_validate(body)
        readable = "yes"
    except ValidationError as error:
        readable = f"no: {error}"
    stable = cluster.apps.read_namespaced_deployment(f"{DEPLOYMENT}-stable", NAMESPACE)
    brief = {
        "driftpolicy readable by the operator's model": readable,
        "driftpolicy": {
            "severity": policy.get("severity"),
            "rollback": {
                k: v for k, v in (policy.get("rollback") or {}).items() if k != "features"
            },
            "Drifted": [c for c in policy.get("conditions") or [] if c["type"] == "Drifted"],
        },
        "modeldeployment": {
            k: deployment.get(k) for k in ("phase", "stableVersion", "rolledBackVersion", "drift")
        }
        | {
            "RolledBack": [
                c for c in deployment.get("conditions") or [] if c["type"] == "RolledBack"
            ]
        },
        "stable deployment annotations": stable.metadata.annotations,
    }
    return json.dumps(brief, default=str)[:4000]


@dataclass
class Measurement:
    """Seconds from the onset to each outcome, as first seen by the poll."""

    drifted_s: float | None = None  # DriftPolicy Drifted=True (the sidecar's write)
    requested_s: float | None = None  # DriftPolicy status.rollback names churn-v2 (operator)
    back_s: float | None = None  # the ModelDeployment serves churn-v1 again (operator)
    severity: str = ""
    samples: int = 0
    polls: list[float] = field(default_factory=list)


def measure(cluster: Cluster, traffic: Traffic, settings: Settings) -> Measurement:
    """Poll every POLL_S until the three outcomes are seen, or the policy's side is and
    `back_timeout_s` has passed since the onset without traffic back (the run then reports
    "not back"). A time is when the read that showed it returned, minus the onset: late
    by at most one poll period (measured and reported with it)."""
    seen = Measurement()
    started = last = time.monotonic()
    deadline = started + settings.timeout_s

    def since_onset() -> float:
        onset = traffic.onset
        if onset is None:
            raise RuntimeError("no shifted request was sent")
        return round(time.monotonic() - onset, 3)

    while seen.drifted_s is None or seen.requested_s is None or seen.back_s is None:
        policy_seen = seen.drifted_s is not None and seen.requested_s is not None
        if policy_seen and time.monotonic() - started > settings.back_timeout_s:
            break
        if not policy_seen and time.monotonic() > deadline:
            raise RuntimeError(
                f"no drift verdict within {settings.timeout_s} s of the onset: {seen}; "
                f"the cluster then:\n{what_the_cluster_says(cluster)}"
            )
        try:
            if seen.drifted_s is None or seen.requested_s is None:
                status = cluster.status("driftpolicies", POLICY)
                if seen.drifted_s is None and drifted_condition(status):
                    seen.drifted_s = since_onset()
                    evaluation = own_report(status).get("evaluation") or {}
                    seen.severity = str(status.get("severity") or evaluation.get("severity"))
                    seen.samples = int(evaluation.get("samples") or 0)
                if (
                    seen.requested_s is None
                    and (status.get("rollback") or {}).get("version") == BAD
                ):
                    seen.requested_s = since_onset()
            if seen.back_s is None and traffic_back(cluster):
                seen.back_s = since_onset()
        except kubernetes.client.ApiException as error:  # not yet: read again next poll
            print(f"  (read failed: {error.status} {error.reason})", flush=True)
        now = time.monotonic()
        seen.polls.append(now - last)
        last = now
        time.sleep(POLL_S)  # the polling period: the measurement's resolution
    if seen.back_s is None:
        print(
            f"  traffic not back within {settings.back_timeout_s:.0f} s; the cluster then:\n"
            + what_the_cluster_says(cluster),
            flush=True,
        )
    return seen


# ----------------------------------------------------------------------------- reporting


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {max(values):.2f} s"


def back_cell(these: list[RunResult]) -> str:
    back = [r.back_s for r in these if r.back_s is not None]
    missing = len(these) - len(back)
    if not missing:
        return seconds(back)
    waited = min(r.back_timeout_s for r in these)
    return f"not back within {waited:.0f} s in {missing} of {len(these)}" + (
        f"; the others {seconds(back)}" if back else ""
    )


def table(results: list[RunResult]) -> str:
    rows = [
        "| S | goal 2S+10 | runs | onset -> Drifted | onset -> rollback requested | "
        "onset -> traffic back on churn-v1 | within goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for interval in sorted({r.interval_s for r in results}):
        these = [r for r in results if r.interval_s == interval]
        goal = these[0].goal_s
        within = sum(
            r.drifted_s <= goal and r.back_s is not None and r.back_s <= goal for r in these
        )
        rows.append(
            f"| {interval} s | {goal:.0f} s | {len(these)} | "
            f"{seconds([r.drifted_s for r in these])} | "
            f"{seconds([r.requested_s for r in these])} | {back_cell(these)} | "
            f"{within}/{len(these)} |"
        )
    return "\n".join(rows) + "\n\n(median / max over the runs)"


def details(results: list[RunResult]) -> str:
    rows = [
        "| S | run | onset after a clean evaluation | Drifted | rollback requested | "
        "traffic back | severity | samples | traffic rows/s | poll period median / max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        back = f"{r.back_s:.2f} s" if r.back_s is not None else f"> {r.back_timeout_s:.0f} s"
        rows.append(
            f"| {r.interval_s} s | {r.run} | {r.phase_s:.2f} s | {r.drifted_s:.2f} s | "
            f"{r.requested_s:.2f} s | {back} | {r.severity} | {r.samples} | "
            f"{r.rows_per_s:.0f} | {r.poll_median_s * 1000:.0f} / {r.poll_max_s * 1000:.0f} ms |"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- the command


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that every process started is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def leftover_processes() -> list[str]:
    import psutil

    return [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in psutil.Process().children(True)]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--interval",
        type=positive_int,
        action="append",
        help="the policy's window.intervalSeconds S; repeatable (default: 5 and 10)",
    )
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per interval")
    parser.add_argument("--window-size", type=positive_int, default=1000)
    parser.add_argument("--min-samples", type=positive_int, default=100)
    parser.add_argument(
        "--shift", type=float, default=2.0, help="drift: every feature's mean moves this many sd"
    )
    parser.add_argument("--rows-per-request", type=positive_int, default=8)
    parser.add_argument(
        "--pause", type=float, default=0.02, help="seconds between requests (the traffic rate)"
    )
    parser.add_argument(
        "--back-timeout",
        type=float,
        help="seconds after the onset to wait for traffic back (default: twice the goal)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.min_samples > args.window_size:
        parser.error("--min-samples must not exceed --window-size")
    if args.shift <= 0 or args.pause < 0:
        parser.error("--shift must be positive and --pause not negative")
    intervals: list[int] = args.interval or [5, 10]
    results: list[RunResult] = []
    started = machine()
    print(f"# machine: {started}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-drift-loop-"))
    try:
        model = ModelFile(root, 7)
        profile = reference_profile(model, root)
        with terminated_as_interrupt():
            for interval in intervals:
                settings = Settings(
                    window_size=args.window_size,
                    min_samples=args.min_samples,
                    shift_sd=args.shift,
                    rows_per_request=args.rows_per_request,
                    pause_s=args.pause,
                    timeout_s=max(120.0, 6.0 * interval),
                    back_timeout_s=args.back_timeout or 2.0 * (2 * interval + 10),
                )
                for run in range(1, args.repeat + 1):
                    # onsets spread evenly over the sidecar's cycle
                    phase = interval * (run - 0.5) / args.repeat
                    work = root / f"s{interval}-run{run}"
                    work.mkdir()
                    begun = time.monotonic()
                    result = one_run(interval, run, phase, settings, model, profile, work)
                    results.append(result)
                    back = (
                        f"{result.back_s:.2f} s"
                        if result.back_s is not None
                        else f"not within {result.back_timeout_s:.0f} s"
                    )
                    print(
                        f"S={interval} run {run}: Drifted {result.drifted_s:.2f} s, rollback "
                        f"requested {result.requested_s:.2f} s, traffic back {back} (onset "
                        f"{phase:.2f} s after a clean evaluation, severity {result.severity}; "
                        f"run took {time.monotonic() - begun:.0f} s)",
                        flush=True,
                    )
    finally:
        left = leftover_processes()
        if not args.keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"# work folder kept: {root}")
    print()
    print(table(results))
    print()
    print(details(results))
    ended = machine()
    print(
        f"\n# started {started['date']} (load {started['load']}), ended {ended['date']} "
        f"(load {ended['load']}); poll period {POLL_S * 1000:.0f} ms plus the reads"
    )
    print(f"# processes left behind: {left or 'none'}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"machine": started, "ended": ended, "runs": [asdict(r) for r in results]},
                indent=2,
            )
        )
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
