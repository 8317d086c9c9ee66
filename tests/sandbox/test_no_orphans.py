"""No process outlives the sandbox when the operator or the sandbox itself is killed
(SIGKILL). A normal end (the `bad` and `rollback` scenarios) and Ctrl-C (the default
story) are covered by test_story."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import psutil

from tests.sandbox.harness import SandboxRun, all_gone, names
from tests.support import wait_until

DEADLINE_S = 180.0


def serving(run: SandboxRun) -> list[psutil.Process]:
    """Wait until the first version's pods serve; the processes running then."""
    run.connect()
    wait_until(
        lambda: run.process.poll() is None and run.running_serving_pods() >= 2,
        DEADLINE_S,
        what="two serving pods",
        interval_s=0.1,
    )
    processes = run.descendants()
    started = names(processes)
    assert any("driftline-serve" in n for n in started), started
    assert any("driftline.operator" in n for n in started), started
    return processes


def test_when_the_operator_dies_the_sandbox_stops_everything_and_fails(tmp_path: Path):
    run = SandboxRun(tmp_path / "sandbox", "--keep")
    try:
        processes = serving(run)
        os.kill(run.state()["processes"]["operator"], signal.SIGKILL)
        assert run.process.wait(timeout=60) == 1, run.log()
    finally:
        run.stop()
    wait_until(lambda: all_gone(processes), 30, what="no process left")
    assert not Path(run.state()["podRoot"]).exists()


def test_when_the_sandbox_itself_is_killed_its_children_die_with_it(tmp_path: Path):
    run = SandboxRun(tmp_path / "sandbox", "--keep")
    try:
        processes = serving(run)
        run.process.send_signal(signal.SIGKILL)  # no cleanup code runs: the kernel's death signal
        run.process.wait(timeout=30)
    finally:
        run.stop()
    wait_until(lambda: all_gone(processes), 30, what="no process left")
    # nothing removed the pods' folders (no code ran); the test does
    shutil.rmtree(run.state()["podRoot"], ignore_errors=True)
