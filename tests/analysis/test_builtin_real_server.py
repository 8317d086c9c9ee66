"""The built-in gates on the /metrics of real ``driftline-serve`` processes driven with
real traffic: a canary whose requests fail, beside a healthy stable, and a restart."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest

from driftline.analysis.builtin import (
    Snapshot,
    increase,
    p99_latency,
    p99_ratio,
    read_exposition,
    success_rate,
    success_rate_drop,
)
from driftline.analysis.types import Value
from tests.serving.conftest import (  # noqa: F401  (fixtures, used by name)
    ModelFile,
    ServerProcess,
    mlp_file,
    model_dir,
    start_server,
)

INFER = "/v2/models/churn/infer"
GOOD = json.dumps(
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
).encode()


def start_track(
    start: Callable[..., ServerProcess], model: ModelFile, track: str, version: str
) -> ServerProcess:
    server = start(
        "churn",
        str(model.path),
        "--model-version",
        "1",
        "--track",
        track,
        env={"DRIFTLINE_MODEL_VERSION_NAME": version},
    )
    server.wait_ready()
    return server


def snapshot(server: ServerProcess, track: str, version: str) -> Snapshot:
    read = read_exposition(server.metrics(), {"track": track, "version": version})
    assert isinstance(read, Snapshot), read
    return read


def send(server: ServerProcess, good: int, bad: int = 0) -> None:
    for _ in range(good):
        assert server.post(INFER, GOOD)[0] == 200
    for _ in range(bad):
        assert server.post(INFER, b"{")[0] == 400


@pytest.fixture(scope="module")
def tracks(
    start_server: Callable[..., ServerProcess],  # noqa: F811
    mlp_file: ModelFile,  # noqa: F811
) -> tuple[ServerProcess, ServerProcess]:
    return (
        start_track(start_server, mlp_file, "canary", "churn-v2"),
        start_track(start_server, mlp_file, "stable", "churn-v1"),
    )


def test_a_failing_canary_is_measured_against_a_healthy_stable(
    tracks: tuple[ServerProcess, ServerProcess],
) -> None:
    canary, stable = tracks
    send(canary, good=5, bad=5)  # before the period: not counted
    before = snapshot(canary, "canary", "churn-v2"), snapshot(stable, "stable", "churn-v1")
    send(canary, good=60, bad=20)
    send(stable, good=80)
    canary_window = increase(before[0], snapshot(canary, "canary", "churn-v2"))
    stable_window = increase(before[1], snapshot(stable, "stable", "churn-v1"))
    assert success_rate(canary_window, min_requests=50) == Value(0.75)
    assert success_rate(stable_window, min_requests=50) == Value(1.0)
    assert success_rate_drop(canary_window, stable_window, min_requests=50) == Value(0.25)
    for outcome in (
        p99_latency(canary_window, min_requests=50),
        p99_latency(stable_window, min_requests=50),
        p99_ratio(canary_window, stable_window, min_requests=50),
    ):
        assert isinstance(outcome, Value) and math.isfinite(outcome.value)
        assert outcome.value > 0


def test_a_restarted_server_counts_as_a_reset(
    start_server: Callable[..., ServerProcess],  # noqa: F811
    mlp_file: ModelFile,  # noqa: F811
) -> None:
    first = start_track(start_server, mlp_file, "canary", "churn-v3")
    send(first, good=30)
    before = snapshot(first, "canary", "churn-v3")
    first.stop()
    second = start_track(start_server, mlp_file, "canary", "churn-v3")
    send(second, good=12, bad=4)
    window = increase(before, snapshot(second, "canary", "churn-v3"))
    assert window.requests == 16
    assert success_rate(window, min_requests=10) == Value(0.75)
