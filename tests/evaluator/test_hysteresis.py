"""Hysteresis: consecutive drifted windows confirm drift; after confirmed drift clears,
`cooldownSeconds` must pass before drifted windows count again. Clock injected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftline_serving.drift import load_profile
from driftline_serving.evaluator.core import (
    Evaluator,
    HysteresisSettings,
    HysteresisState,
    next_hysteresis,
)
from driftline_serving.sampling.codec import SampleBatch

from .conftest import FEATURES, reference_rows, scores_for

SETTINGS = HysteresisSettings(consecutive_windows=2, cooldown_seconds=600)


def run(verdicts: list[tuple[float, bool]], settings: HysteresisSettings = SETTINGS):
    state = HysteresisState()
    states = []
    for now, drifted in verdicts:
        state = next_hysteresis(state, drifted, now, settings)
        states.append(state)
    return states


def test_drift_is_confirmed_after_consecutive_windows() -> None:
    states = run([(0, True), (10, True), (20, True)])
    assert [s.consecutive_drifted for s in states] == [1, 2, 3]
    assert [s.confirmed for s in states] == [False, True, True]
    assert all(s.cooldown_until is None for s in states)


def test_no_new_confirmation_within_the_cooldown_after_drift_clears() -> None:
    states = run(
        [
            (0, True),
            (10, True),  # confirmed
            (20, False),  # cleared: cooldown until 620
            (30, True),
            (40, True),
            (619, True),  # still cooling: none of these count
            (620, True),  # cooldown over: counting starts again
            (630, True),  # confirmed again
        ]
    )
    assert [s.confirmed for s in states] == [False, True, False, False, False, False, False, True]
    assert [s.consecutive_drifted for s in states] == [1, 2, 0, 0, 0, 0, 1, 2]
    assert states[2].cooldown_until == 620
    assert states[5].cooling_down(619) and not states[6].cooling_down(620)
    assert states[6].cooldown_until is None


def test_unconfirmed_drift_that_clears_starts_no_cooldown() -> None:
    states = run([(0, True), (10, False), (20, True), (30, True)])
    assert [s.cooldown_until for s in states] == [None, None, None, None]
    assert states[-1].confirmed


def test_zero_cooldown_confirms_again_at_once() -> None:
    settings = HysteresisSettings(consecutive_windows=1, cooldown_seconds=0)
    states = run([(0, True), (10, False), (20, True)], settings)
    assert [s.confirmed for s in states] == [True, False, True]


def test_settings_come_from_the_policy_spec() -> None:
    spec = {"hysteresis": {"consecutiveWindows": 4, "cooldownSeconds": 90}}
    assert HysteresisSettings.from_policy(spec) == HysteresisSettings(4, 90.0)
    assert HysteresisSettings.from_policy({}) == HysteresisSettings(3, 3600.0)


def batch(matrix: np.ndarray) -> SampleBatch:
    return SampleBatch(
        model_version="v1",
        request_ids=[""] * len(matrix),
        received_at=np.zeros(len(matrix)),
        inputs={"input": matrix},
        outputs={"scores": scores_for(matrix)},
    )


@pytest.mark.parametrize("cooldown", [0, 600])
def test_evaluator_applies_the_cooldown_to_real_windows(
    profile_file: tuple[Path, str], cooldown: int
) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]))
    evaluator.configure(
        {
            "window": {"size": 400, "minSamples": 100},
            "hysteresis": {"consecutiveWindows": 2, "cooldownSeconds": cooldown},
            "predictionDrift": {"enabled": False, "confidence": False},
        }
    )
    clean = reference_rows(400, seed=9)
    shifted = reference_rows(400, seed=8)
    shifted[:, FEATURES.index("f2")] += 1.5

    def evaluate(rows: np.ndarray, now: float) -> int:
        evaluator.add(batch(rows), now)  # 400 rows replace the whole window
        evaluator.evaluate(now)
        return evaluator.consecutive_drifted

    assert [evaluate(shifted, 0), evaluate(shifted, 60)] == [1, 2]
    assert evaluator.hysteresis.confirmed
    assert evaluate(clean, 120) == 0
    during = [evaluate(shifted, t) for t in (180, 240, 300)]
    if cooldown:
        assert during == [0, 0, 0]
        assert evaluator.hysteresis.cooldown_until == 720
        assert [evaluate(shifted, 720), evaluate(shifted, 780)] == [1, 2]
    else:
        assert during == [1, 2, 3]
    assert evaluator.hysteresis.confirmed


def test_a_restarted_evaluator_resumes_the_reported_cooldown(
    profile_file: tuple[Path, str],
) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]))
    evaluator.resume_cooldown(until=500, now=100)
    assert evaluator.hysteresis == HysteresisState(cooldown_until=500)
    evaluator.resume_cooldown(until=50, now=100)  # over already: nothing to resume
    assert evaluator.hysteresis.cooldown_until == 500
    fresh = Evaluator(load_profile(profile_file[0]))
    fresh.resume_cooldown(until=50, now=100)
    assert fresh.hysteresis == HysteresisState()
