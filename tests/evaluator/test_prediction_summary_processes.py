"""Issue 15's prediction summary out of the real sidecar: the real server and the real
evaluator as processes, real HTTP traffic, and the counts in the DriftPolicy's status (in
the local Kubernetes API) equal to the predictions onnxruntime makes on the same inputs.
Then what the rollout gate does with them: two different models on the same inputs
diverge, the same model under two versions does not."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from driftline.analysis.divergence import BinnedCounts, DivergenceSettings, judge_divergence
from driftline.analysis.pod_reports import drift_outcome, prediction_counts
from driftline.analysis.types import Value
from driftline_serving.drift import Schema, build_profile, save_profile
from driftline_serving.evaluator.predictions import DEFAULT_SCORE_BIN_EDGES, OTHER
from driftline_serving.examples.models import (
    MLP_INPUT_NAME,
    MLP_INPUTS,
    MLP_OUTPUT_NAME,
    classifier_mlp,
    save,
)

from .conftest import NAMESPACE, POLICY, read_policy
from .sidecar_pods import Pod, eventually

ROWS = 300  # at least DivergenceSettings' 200 predictions per track, within the 500-row window
CONFIDENCE = "confidence"
pytestmark = pytest.mark.timeout(180)


def with_confidence(model: onnx.ModelProto) -> onnx.ModelProto:
    """The classifier plus a second output, its top probability (one float per row)."""
    graph = model.graph
    graph.node.append(
        helper.make_node("ReduceMax", [MLP_OUTPUT_NAME], [CONFIDENCE], axes=[1], keepdims=1)
    )
    graph.output.append(helper.make_tensor_value_info(CONFIDENCE, TensorProto.FLOAT, ["batch", 1]))
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Two classifiers with different weights (seeds 7 and 8), one reference profile."""
    directory = tmp_path_factory.mktemp("summary")
    reference = np.random.default_rng(5).normal(size=(5_000, MLP_INPUTS))
    features = [f"x{i}" for i in range(MLP_INPUTS)]
    profile = build_profile(
        Schema.of([(name, "numeric") for name in features]),
        [{name: reference[:, i] for i, name in enumerate(features)}],
    )
    profile_path = directory / "reference.dlprofile"
    profile_sha = save_profile(profile, profile_path)
    artifacts = {}
    for label, seed in (("a", 7), ("b", 8)):
        path = directory / f"mlp-{label}.onnx"
        artifacts[label] = {
            "model": path,
            "model_sha": save(with_confidence(classifier_mlp(seed)), path),
            "profile": profile_path,
            "profile_sha": profile_sha,
        }
    return artifacts


@pytest.fixture
def start_pod(api, models, tmp_path: Path) -> Iterator[Callable[[str, str, str], Pod]]:
    pods: list[Pod] = []

    def start(name: str, model: str, version: str) -> Pod:
        return Pod(
            name, tmp_path, models[model], api.kubeconfig_path, started=pods, model_version=version
        )

    yield start
    for pod in pods:
        pod.stop()


def inputs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(ROWS, MLP_INPUTS)).astype(np.float32)


def send(pod: Pod, rows: np.ndarray) -> None:
    for i, row in enumerate(rows):
        pod.infer(row[None, :], f"{pod.name}-{i}")


def onnxruntime_outputs(model: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, confidence) per row, from onnxruntime itself, a row at a time as
    the requests were sent."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    results = [session.run(None, {MLP_INPUT_NAME: row[None, :]}) for row in rows]
    probabilities = np.concatenate([r[0] for r in results])
    confidence = np.concatenate([r[1] for r in results])[:, 0]
    return probabilities.argmax(axis=1), confidence


def expected_bins(values: np.ndarray, edges: tuple[float, ...]) -> list[int]:
    bounds = (-np.inf, *edges, np.inf)
    return [int(((values > lo) & (values <= hi)).sum()) for lo, hi in itertools.pairwise(bounds)]


def summaries(api, pod: str, rows: int = ROWS) -> Callable[[], dict[str, Any] | None]:
    """Once the pod's report counts `rows` predictions: its summaries by output."""

    def check() -> dict[str, Any] | None:
        report = ((read_policy(api).get("status") or {}).get("pods") or {}).get(pod) or {}
        by_output = {s["output"]: s for s in report.get("predictions") or []}
        classes = by_output.get(MLP_OUTPUT_NAME, {}).get("classes") or []
        return by_output if sum(c["count"] for c in classes) == rows else None

    return check


def set_summary_settings(api, settings: dict[str, Any]) -> None:
    objects = kubernetes.client.CustomObjectsApi(api.api_client())
    objects.patch_namespaced_custom_object(
        "driftline.io",
        "v1alpha1",
        NAMESPACE,
        "driftpolicies",
        POLICY,
        {"spec": {"predictionSummary": settings}},
    )


def test_the_report_counts_the_predictions_that_were_made(api, models, start_pod) -> None:
    pod = start_pod("mlp-a-0", "a", "mlp-a")
    rows = inputs(seed=1)
    send(pod, rows)
    classes, confidence = onnxruntime_outputs(models["a"]["model"], rows)

    summary = eventually(summaries(api, pod.name))
    labels, label_counts = np.unique(classes, return_counts=True)
    expected = sorted(
        ({"name": str(n), "count": int(c)} for n, c in zip(labels, label_counts, strict=True)),
        key=lambda entry: -entry["count"],
    )
    assert summary[MLP_OUTPUT_NAME] == {
        "output": MLP_OUTPUT_NAME,
        "kind": "Classes",
        "classes": expected,
        "invalid": 0,
    }
    assert summary[CONFIDENCE] == {
        "output": CONFIDENCE,
        "kind": "Scores",
        "binEdges": list(DEFAULT_SCORE_BIN_EDGES),
        "binCounts": expected_bins(confidence, DEFAULT_SCORE_BIN_EDGES),
        "invalid": 0,
    }
    assert len(set(classes)) >= 2 and np.count_nonzero(summary[CONFIDENCE]["binCounts"]) >= 2

    # the bins and the class limit come from the DriftPolicy, read on each interval
    set_summary_settings(api, {"scoreBinEdges": [0.45], "maxClasses": 1})
    summary = eventually(
        lambda: (s := summaries(api, pod.name)()) and s[CONFIDENCE]["binEdges"] == [0.45] and s
    )
    assert summary[CONFIDENCE]["binCounts"] == expected_bins(confidence, (0.45,))
    assert summary[MLP_OUTPUT_NAME]["classes"] == [
        expected[0],
        {"name": OTHER, "count": ROWS - expected[0]["count"]},
    ]

    # what a gate reads: the same counts, through the pure reader
    pods = read_policy(api)["status"]["pods"]
    now = datetime.now(UTC)
    assert (
        prediction_counts(pods, "mlp-a", CONFIDENCE, now=now, max_age_seconds=60)
        == BinnedCounts((0.45,), tuple(expected_bins(confidence, (0.45,)))).by_bin()
    )

    # turned off, the summary leaves the report (the merge patch deletes the key)
    set_summary_settings(api, {"enabled": False})
    eventually(lambda: "predictions" not in read_policy(api)["status"]["pods"][pod.name])
    assert read_policy(api)["status"]["pods"][pod.name]["evaluation"]["samples"] == ROWS


def test_different_models_diverge_and_the_same_model_does_not(api, start_pod) -> None:
    stable = start_pod("mlp-a-0", "a", "mlp-a")
    canary = start_pod("mlp-b-0", "b", "mlp-b")
    same_model = start_pod("mlp-a-copy-0", "a", "mlp-a-copy")
    send(stable, inputs(seed=2))
    send(canary, inputs(seed=2))  # the same requests, answered by another model
    send(same_model, inputs(seed=3))  # other requests, answered by the same model
    for pod in (stable, canary, same_model):
        eventually(summaries(api, pod.name))

    pods = read_policy(api)["status"]["pods"]
    now = datetime.now(UTC)

    def counts(version: str, output: str = MLP_OUTPUT_NAME) -> Any:
        return prediction_counts(pods, version, output, now=now, max_age_seconds=60)

    settings = DivergenceSettings()
    diverged = judge_divergence(counts("mlp-b"), counts("mlp-a"), settings)
    assert diverged.verdict == "Failed", diverged.reason
    alike = judge_divergence(counts("mlp-a-copy"), counts("mlp-a"), settings)
    assert alike.verdict == "Passed", alike.reason
    alike_scores = judge_divergence(
        counts("mlp-a-copy", CONFIDENCE), counts("mlp-a", CONFIDENCE), settings
    )
    assert alike_scores.verdict == "Passed", alike_scores.reason

    # the same reports' drift verdicts: traffic like the reference drifts on no track
    for version in ("mlp-a", "mlp-b", "mlp-a-copy"):
        outcome = drift_outcome(
            pods, version, now=now, max_age_seconds=60, consecutive_windows=2, min_samples=200
        )
        assert outcome == Value(0.0), (version, outcome)
