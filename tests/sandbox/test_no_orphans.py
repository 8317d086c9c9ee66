"""No process outlives the sandbox when the operator or the sandbox itself is killed
(SIGKILL), and the next sandbox removes the folders a killed one left. A normal end (the
`bad` and `rollback` scenarios) and Ctrl-C (the default story) are covered by
test_story."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from driftline.sandbox.leftovers import MARKER, WORKDIR_PREFIX
from tests.sandbox.harness import START_DEADLINE_S, SandboxRun, all_gone, names
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


@pytest.fixture
def tmpdir_of_the_test() -> Iterator[Path]:
    """The sandboxes' TMPDIR: only their folders in it (short: pods' Unix socket paths go
    under it)."""
    path = Path(tempfile.mkdtemp(prefix="dlt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def started(run: SandboxRun) -> dict[str, Any]:
    """The sandbox's state once it has claimed its slot and made its folders."""

    def written() -> dict[str, Any]:
        if run.process.poll() is not None:
            raise AssertionError(f"the sandbox exited early:\n{run.log()}")
        return run.state() if "slot" in run.state() else {}

    state: dict[str, Any] = wait_until(written, START_DEADLINE_S, what="sandbox.json")
    return state


def folders(run: SandboxRun) -> list[Path]:
    assert run.workdir is not None
    return [run.workdir, Path(run.state()["podRoot"])]


def test_a_sandbox_removes_the_folders_a_killed_one_left_and_no_live_ones(
    tmpdir_of_the_test: Path,
):
    tmpdir = tmpdir_of_the_test
    live = SandboxRun(None, "--keep", tmpdir=tmpdir)
    killed = SandboxRun(None, "--keep", tmpdir=tmpdir)
    given = tmpdir / f"{WORKDIR_PREFIX}given"  # a sandbox's name, but the user's folder
    killed_with_given_workdir = SandboxRun(given, "--keep", tmpdir=tmpdir)
    runs = [live, killed, killed_with_given_workdir]
    try:
        slots = {started(run)["slot"] for run in runs}
        assert len(slots) == len(runs)  # side by side, each on its own addresses
        live_folders = folders(live)
        killed_workdir, killed_pod_root = folders(killed)
        _, given_pod_root = folders(killed_with_given_workdir)
        for run in (killed, killed_with_given_workdir):
            run.process.send_signal(signal.SIGKILL)
            run.process.wait(timeout=30)
        left = [killed_workdir, killed_pod_root, given_pod_root]
        assert all(p.is_dir() for p in left)  # no code of theirs ran
        runs.append(next_one := SandboxRun(None, "--keep", tmpdir=tmpdir))
        started(next_one)  # written after its start-up cleanup
        assert not any(p.exists() for p in left), left
        assert (given / "sandbox.json").is_file()
        assert live.process.poll() is None
        assert all((p / MARKER).is_file() for p in live_folders)
        assert (live_folders[0] / "sandbox.json").is_file()
    finally:
        for run in runs:
            run.stop()


def test_two_sandboxes_side_by_side_both_serve_on_their_own_addresses(
    tmpdir_of_the_test: Path,
):
    runs = [SandboxRun(None, "--keep", tmpdir=tmpdir_of_the_test) for _ in range(2)]
    try:
        for run in runs:
            serving(run)
        for run in runs:
            network = f"127.{run.state()['slot']}."
            address = run.service_address()
            assert address is not None and address.startswith(network), address
            assert all(ip.startswith(network) for ip in run.pod_ips()), run.pod_ips()
            assert wait_until(run.infer, DEADLINE_S, what="an answer through the Service")
        assert runs[0].service_address() != runs[1].service_address()
    finally:
        for run in runs:
            run.stop()
