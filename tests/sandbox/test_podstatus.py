"""Process state -> Pod status; probes, restarts and termination messages (pure)."""

from __future__ import annotations

import pytest

from driftline.sandbox.podstatus import (
    ContainerState,
    ProbeCounter,
    Terminated,
    is_pod_ready,
    pod_phase,
    pod_status,
    restart_backoff,
    should_restart,
    termination_message,
)


def running(name: str = "c", ready: bool = True) -> ContainerState:
    return ContainerState(name, "img", running_since="t0", started=True, ready=ready)


def ended(code: int, name: str = "c") -> ContainerState:
    return ContainerState(name, "img", terminated=Terminated(code, "t0", "t1", "msg"))


def test_readiness_needs_success_threshold_and_drops_after_failure_threshold():
    counter = ProbeCounter(failure_threshold=3, success_threshold=2)
    assert counter.record(True) is False and not counter.passed
    assert counter.record(True) is True and counter.passed
    counter.record(False)
    counter.record(False)
    assert counter.passed and not counter.failed
    assert counter.record(False) is True
    assert not counter.passed and counter.failed
    counter.record(True)
    assert not counter.failed  # a success resets the failures


def test_restart_backoff_doubles_from_the_base_up_to_the_cap():
    assert [restart_backoff(n) for n in range(6)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    assert restart_backoff(7) == 300.0
    assert restart_backoff(3, base_s=1.0, cap_s=3.0) == 3.0


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 1, False),
    ],
)
def test_restart_policy(policy, code, restart):
    assert should_restart(policy, code) is restart


def test_termination_message_from_file_then_log_fallback_on_error_only():
    assert termination_message("done", "log", "File", 1) == "done"
    assert termination_message("", "a\nb", "File", 1) == ""
    assert termination_message("", "a\nb", "FallbackToLogsOnError", 0) == ""
    assert termination_message("", "a\nb", "FallbackToLogsOnError", 1) == "a\nb"
    long_log = "\n".join(f"line {i}" for i in range(200))
    fallback = termination_message("", long_log, "FallbackToLogsOnError", 1)
    assert fallback.splitlines()[-1] == "line 199"
    assert len(fallback.splitlines()) == 80
    assert len(termination_message("x" * 5000, "", "File", 0)) == 4096


@pytest.mark.parametrize(
    ("states", "policy", "phase"),
    [
        ([running(), ended(0, "d")], "Never", "Running"),
        ([ended(0), ended(0, "d")], "Never", "Succeeded"),
        ([ended(0), ended(1, "d")], "Never", "Failed"),
        ([ended(1)], "OnFailure", "Running"),
        ([ContainerState("c", "img")], "Always", "Pending"),
        ([], "Always", "Pending"),
    ],
)
def test_pod_phase(states, policy, phase):
    assert pod_phase(states, policy) == phase


def test_pod_status_is_ready_only_when_every_container_is_and_keeps_transition_times():
    first = pod_status(
        [running(ready=True), running("d", ready=False)],
        restart_policy="Always",
        pod_ip="127.10.0.2",
        start_time="t0",
        now="t1",
    )
    conditions = {c["type"]: c for c in first["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert first["podIP"] == "127.10.0.2" and first["phase"] == "Running"
    assert not is_pod_ready({"status": first})
    second = pod_status(
        [running(ready=True), running("d", ready=True)],
        restart_policy="Always",
        pod_ip="127.10.0.2",
        start_time="t0",
        now="t2",
        previous_conditions=first["conditions"],
    )
    conditions = {c["type"]: c for c in second["conditions"]}
    assert conditions["Ready"] == {
        "type": "Ready",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": "t2",
    }
    assert conditions["PodScheduled"]["lastTransitionTime"] == "t1"  # unchanged status
    assert is_pod_ready({"status": second})


def test_container_status_reports_restarts_and_the_last_termination():
    state = running()
    state.restart_count = 2
    state.last_terminated = Terminated(137, "t0", "t1", "", signal=9)
    status = pod_status([state], restart_policy="Always", pod_ip="ip", start_time="t0", now="t2")[
        "containerStatuses"
    ][0]
    assert status["restartCount"] == 2
    assert status["lastState"]["terminated"] == {
        "exitCode": 137,
        "reason": "Error",
        "startedAt": "t0",
        "finishedAt": "t1",
        "signal": 9,
    }
    assert "running" in status["state"]
    done = pod_status([ended(0)], restart_policy="Never", pod_ip="ip", start_time="t0", now="t2")[
        "containerStatuses"
    ][0]
    assert done["state"]["terminated"]["reason"] == "Completed"
    assert done["state"]["terminated"]["message"] == "msg"
