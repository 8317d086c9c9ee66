"""The evaluator's pure core: samples in, predictions kept for feedback to join."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftline_serving.drift import load_profile
from driftline_serving.evaluator.core import Evaluator
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
