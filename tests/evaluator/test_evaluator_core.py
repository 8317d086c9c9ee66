"""The evaluator's pure core: samples in, predictions kept for feedback to join."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftline_serving.drift import load_profile
from driftline_serving.evaluator.core import Evaluator, evaluation_wire
from driftline_serving.sampling.codec import Feedback, SampleBatch

from .conftest import reference_rows, scores_for


def test_rows_without_an_id_are_evaluated_but_not_kept_for_feedback(
    profile_file: tuple[Path, str],
) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]))
    matrix = reference_rows(3, seed=5)
    batch = SampleBatch(
        model_version="v1",
        request_ids=["a", "", ""],
        received_at=np.zeros(3),
        inputs={"input": matrix},
        outputs={"scores": scores_for(matrix)},
    )
    evaluator.add(batch, now=1.0)
    assert evaluator.counters.rows_seen == 3 and evaluator.counters.rows_invalid == 0
    evaluator.add_feedback(Feedback(["a", "b"], [1, 0]))
    assert evaluator.counters.feedback_joined == 1
    assert evaluator.counters.feedback_unknown == 1
    # only the named row's prediction is remembered: nothing could ever join the others
    assert list(evaluator._predictions) == ["a"]


def test_labels_fed_back_become_the_reports_performance_reading(
    profile_file: tuple[Path, str],
) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]), {"accuracy": 0.9})
    evaluator.configure({"performance": {"minLabels": 4, "maxAbsoluteDrop": 0.2}})
    matrix = reference_rows(6, seed=7)
    predicted = scores_for(matrix).argmax(axis=1)
    ids = [f"r{i}" for i in range(6)]
    evaluator.add(
        SampleBatch("v1", ids, np.zeros(6), {"input": matrix}, {"scores": scores_for(matrix)}),
        now=1.0,
    )
    # three labels: under minLabels, a reading with no value and no verdict
    evaluator.add_feedback(Feedback(ids[:3], [int(p) for p in predicted[:3]]))
    early = evaluation_wire(evaluator.evaluate(now=2.0), "t")["performance"]
    assert early == {
        "metric": "accuracy",
        "value": None,
        "baseline": 0.9,
        "labels": 3,
        "dropped": False,
    }
    # three more, all wrong: accuracy 0.5 is 0.4 under the baseline, past the 0.2 allowed
    wrong = [int((p + 1) % 3) for p in predicted[3:]]
    evaluator.add_feedback(Feedback(ids[3:], wrong))
    report = evaluator.evaluate(now=3.0)
    reading = evaluation_wire(report, "t")["performance"]
    assert reading == {
        "metric": "accuracy",
        "value": 0.5,
        "baseline": 0.9,
        "labels": 6,
        "dropped": True,
    }
    assert report.severity.value == "High"


def test_a_report_without_a_performance_check_nulls_the_reading(
    profile_file: tuple[Path, str],
) -> None:
    # the status is merge-patched: an absent key would leave an earlier reading in place
    evaluator = Evaluator(load_profile(profile_file[0]), {"accuracy": 0.9})
    assert evaluation_wire(evaluator.evaluate(now=1.0), "t")["performance"] is None
