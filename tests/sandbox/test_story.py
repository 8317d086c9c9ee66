"""The default story end to end (quick scenario): `driftline sandbox` in a subprocess,
every transition read from the resources' status and the answers through the Service."""

from __future__ import annotations

import json
import shutil
import signal
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.sandbox.harness import SandboxRun, all_gone, names
from tests.support import wait_until

STORY_DEADLINE_S = 240.0


def snapshot(status: dict[str, Any]) -> tuple[str, str, str, int]:
    return (
        status.get("phase") or "",
        status.get("stableVersion") or "",
        status.get("canaryVersion") or "",
        int(status.get("canaryWeight") or 0),
    )


def scraped_pods(prometheus: str) -> int:
    """Serving pods of the sandbox's namespace that Prometheus scraped successfully."""
    query = urllib.parse.urlencode({"query": 'up{namespace="sandbox"} == 1'})
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=5) as response:
            return len(json.loads(response.read())["data"]["result"])
    except OSError:
        return 0


def test_the_default_story_runs_to_a_promoted_canary_and_ctrl_c_leaves_nothing_behind(
    tmp_path: Path,
):
    # --keep: the end state stays up for the test to see; then Ctrl-C (SIGINT) stops it
    run = SandboxRun(tmp_path / "sandbox", "--keep")
    try:
        run.connect()
        seen: list[tuple[str, str, str, int]] = []  # deployment states, in order, deduplicated
        versions_ready: list[str] = []
        answers: list[tuple[tuple[str, str, str, int], str]] = []  # (state, answering version)
        processes: dict[int, Any] = {}
        started: set[str] = set()  # their command lines, read while they run

        def observe() -> bool:
            for name in ("churn-v1", "churn-v2"):
                if (
                    name not in versions_ready
                    and run.status("modelversions", name).get("phase") == "Ready"
                ):
                    versions_ready.append(name)
            state = snapshot(run.status("modeldeployments", "churn"))
            if state[0] and (not seen or seen[-1] != state):
                seen.append(state)
            version = run.infer()
            if version is not None:
                answers.append((state, version))
            for process in run.descendants():
                if process.pid not in processes:
                    processes[process.pid] = process
                    started.update(names([process]))
            if run.process.poll() is not None:
                raise AssertionError(
                    f"the sandbox ended before the test saw the story:\n{run.log()}"
                )
            settled = [v for s, v in answers if s == ("Healthy", "churn-v2", "", 0)]
            return len(settled) >= 5

        wait_until(observe, STORY_DEADLINE_S, what="the story to end", interval_s=0.05)
        # the verification ran for real (no stand-in): a pod on the sandbox's node whose
        # termination message is what driftline-verify wrote
        for job in ("churn-v1-verify", "churn-v2-verify"):
            (pod,) = run.job_pods(job)
            assert pod.spec.node_name == "sandbox"
            terminated = pod.status.container_statuses[0].state.terminated
            assert terminated.exit_code == 0
            result = json.loads(terminated.message)
            assert result["ok"] is True and len(result["sha256"]) == 64
        # where a prometheus binary exists, the sandbox runs it and it scrapes the pods
        prometheus = run.state()["prometheus"]
        assert (prometheus is not None) == (shutil.which("prometheus") is not None)
        if prometheus is not None:
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

    assert versions_ready == ["churn-v1", "churn-v2"]
    healthy_v1 = ("Healthy", "churn-v1", "", 0)
    canary = [s for s in seen if s[2] == "churn-v2" and s[3] == 50]
    healthy_v2 = ("Healthy", "churn-v2", "", 0)
    assert healthy_v1 in seen and canary and healthy_v2 in seen, seen
    assert seen.index(healthy_v1) < seen.index(canary[0]) < seen.index(healthy_v2), seen
    # the pods' own answers: v1 alone while v1 was stable, both during the canary, v2 at the end
    assert {v for s, v in answers if s == healthy_v1} == {"1.0.0"}
    during_canary = {v for s, v in answers if s in canary}
    assert during_canary == {"1.0.0", "2.0.0"}, answers
    assert {v for s, v in answers if s == healthy_v2} == {"2.0.0"}
    # every process it started is gone: the API, the operator, the pods' containers
    assert any("apiserver" in n for n in started), started
    assert any("driftline.operator" in n for n in started), started
    assert any("driftline-serve" in n for n in started), started
    assert any("driftline-evaluator" in n for n in started), started
    assert any("driftline-verify" in n for n in started), started
    wait_until(lambda: all_gone(list(processes.values())), 30, what="no process left")
    assert not Path(run.state()["podRoot"]).exists()
