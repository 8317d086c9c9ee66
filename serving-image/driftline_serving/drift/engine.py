"""The evaluation: one window against one profile, as a pure function.

Each feature gets one significance test (KS for numeric features, or a chi-square on
the reference's decile bins when the policy drops KS; chi-square for categorical ones).
Its p-values, the multivariate check's and the output checks' form one family that is
corrected together. A test flags drift only when the family-corrected p-value is below
the significance AND its effect is large enough: KS and chi-square need an effect size
(KS statistic or total variation) of at least `min_effect_size`; PSI, Jensen-Shannon
and Wasserstein need their score at or above their threshold. A feature drifts when any
of its tests flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftline_serving.drift import multivariate as mv
from driftline_serving.drift import statistical_tests as st
from driftline_serving.drift.config import DriftConfig
from driftline_serving.drift.decisions import (
    SeverityInputs,
    adjust_p_values,
    dataset_drifted,
    severity,
)
from driftline_serving.drift.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
)
from driftline_serving.drift.results import (
    DriftReport,
    FeatureResult,
    InvalidCounts,
    MultivariateReport,
    PerformanceResult,
    TestResult,
)
from driftline_serving.drift.schema import FeatureType, Severity, TestName
from driftline_serving.drift.values import as_float, categorical_column, numeric_column

FloatArray = NDArray[np.float64]

SIGNIFICANCE_TESTS = (TestName.KOLMOGOROV_SMIRNOV, TestName.CHI_SQUARE)
# complete rows the multivariate check needs in a window
MULTIVARIATE_MIN_ROWS = 20


@dataclass(frozen=True)
class _Measured:
    """One feature's tests before the correction: what the verdict needs."""

    name: str
    type: FeatureType
    samples: int
    invalid: InvalidCounts
    significance_test: str
    statistic: float
    p_value: float
    effect_size: float
    scores: tuple[tuple[TestName, float, float], ...]  # (test, score, threshold)
    selected: tuple[TestName, ...]


def evaluate(
    profile: Profile,
    window: Mapping[str, Any],
    config: DriftConfig | None = None,
    *,
    predictions: Any | None = None,
    confidences: Any | None = None,
    performance: PerformanceResult | None = None,
    invalid_rows: int = 0,
) -> DriftReport:
    """Evaluate a window (feature name -> column of values) against the profile."""
    config = config or DriftConfig()
    # a "column" that is not a sequence of values (None, a number, a dict) counts as absent
    window = {name: values for name, values in window.items() if _is_column(values)}
    lengths = [len(window[name]) for name in profile.schema.names if name in window]
    samples = max(lengths, default=0)
    unknown = tuple(sorted(set(window) - set(profile.schema.names)))
    multivariate_due = config.multivariate and profile.multivariate is not None
    if samples < config.min_samples:
        return _not_evaluated(
            profile, config, samples, invalid_rows, unknown, performance, multivariate_due
        )

    measured: list[_Measured] = []
    skipped: list[FeatureResult] = []
    jobs: list[Any] = []
    for feature in profile.schema.features:
        tests = config.tests_for(feature.name, feature.type)
        if feature.name not in window:
            skipped.append(
                _skipped(feature.name, feature.type, "no column in the window", absent=True)
            )
        elif feature.type is FeatureType.NUMERIC:
            jobs.append(
                (_measure_numeric, profile.numeric[feature.name], window[feature.name], tests)
            )
        else:
            jobs.append(
                (
                    _measure_categorical,
                    profile.categorical[feature.name],
                    window[feature.name],
                    tests,
                )
            )
    multivariate_job = (_multivariate, profile, window) if multivariate_due else None
    # the heavy numpy calls (sort, searchsorted, interp) release the GIL, so features are
    # measured on a few threads; results do not depend on the number of threads
    results, multivariate = _run(jobs, multivariate_job, config)
    for result in results:
        if isinstance(result, FeatureResult):
            skipped.append(result)
        else:
            measured.append(result)

    outputs: list[_Measured] = []
    unchecked_outputs: list[FeatureResult] = []  # asked for, but too few valid values
    if config.prediction_drift and predictions is not None and profile.prediction is not None:
        measured_prediction = _measure_categorical(
            profile.prediction, predictions, (TestName.JENSEN_SHANNON,), config
        )
        if isinstance(measured_prediction, _Measured):
            outputs.append(measured_prediction)
        else:
            unchecked_outputs.append(_as_output(measured_prediction, "prediction"))
    if config.confidence_drift and confidences is not None and profile.confidence is not None:
        measured_confidence = _measure_numeric(
            profile.confidence, confidences, (TestName.KOLMOGOROV_SMIRNOV,), config
        )
        if isinstance(measured_confidence, _Measured):
            outputs.append(measured_confidence)
        else:
            unchecked_outputs.append(_as_output(measured_confidence, "confidence"))

    multivariate_reason = multivariate if isinstance(multivariate, str) else None
    multivariate = None if isinstance(multivariate, str) else multivariate
    family = [m.p_value for m in measured] + [m.p_value for m in outputs]
    if multivariate is not None:
        family.append(multivariate.p_value)
    adjusted = adjust_p_values(family, config.correction)
    feature_results = [_decide(m, adjusted[i], config) for i, m in enumerate(measured)]
    output_results = [
        _decide(m, adjusted[len(measured) + i], config) for i, m in enumerate(outputs)
    ]
    multivariate_report = None
    if multivariate_reason is not None:
        multivariate_report = MultivariateReport.not_checked(multivariate_reason)
    if multivariate is not None:
        corrected = adjusted[-1]
        multivariate_report = MultivariateReport(
            multivariate.statistic,
            corrected,
            corrected <= config.significance,
            multivariate.pair,
            multivariate.correlation_change,
            multivariate.rows,
        )

    by_name = {r.feature: r for r in [*feature_results, *skipped]}
    features = tuple(by_name[name] for name in profile.schema.names)
    drifted = sum(r.drifted for r in feature_results)
    total = len(profile.schema.features)
    share = drifted / total if total else 0.0
    multivariate_drifted = bool(multivariate_report and multivariate_report.drifted)
    is_drifted = dataset_drifted(drifted, total, config.dataset_drift_share, multivariate_drifted)
    every_output = [*output_results, *unchecked_outputs]
    prediction = next((r for r in every_output if r.type == "prediction"), None)
    confidence = next((r for r in every_output if r.type == "confidence"), None)
    outputs_drifted = any(r.drifted for r in output_results)
    level = severity(
        SeverityInputs(
            is_drifted, share, outputs_drifted, bool(performance and performance.dropped)
        ),
        config.medium_share,
        config.high_share,
    )
    return DriftReport(
        samples=samples,
        evaluated=True,
        features=features,
        drifted_features=drifted,
        drifted_share=share,
        dataset_drifted=is_drifted,
        severity=level,
        significance=config.significance,
        correction=config.correction.value,
        multivariate=multivariate_report,
        prediction=prediction,
        confidence=confidence,
        performance=performance,
        invalid_values=sum(r.invalid.dropped for r in features),
        invalid_rows=invalid_rows,
        unknown_columns=unknown,
    )


def _is_column(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return values.ndim == 1
    return isinstance(values, list | tuple)


def _run(
    jobs: list[Any], multivariate_job: Any, config: DriftConfig
) -> tuple[list[_Measured | FeatureResult], mv.MultivariateResult | str | None]:
    def measure(job: Any) -> _Measured | FeatureResult:
        function, reference, values, tests = job
        result: _Measured | FeatureResult = function(reference, values, tests, config)
        return result

    threads = _threads(config.threads)
    if threads <= 1:
        results = [measure(job) for job in jobs]
        return results, multivariate_job[0](*multivariate_job[1:]) if multivariate_job else None
    pool = _pool(threads)
    pending_multivariate = pool.submit(*multivariate_job) if multivariate_job else None
    # contiguous slices, one per thread: fewer hand-offs than one task per feature
    size = -(-len(jobs) // threads) if jobs else 1
    slices = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    parts = list(pool.map(lambda part: [measure(job) for job in part], slices))
    results = [result for part in parts for result in part]
    return results, pending_multivariate.result() if pending_multivariate else None


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _threads(requested: int) -> int:
    """Threads for the per-feature work. On two CPUs or fewer one thread is faster: the
    hand-offs and the GIL held between numpy calls cost more than the second CPU gives
    (42 against 48 ms per benchmark window, docs/benchmarks.md), and a sidecar should
    leave the other CPU to the model server."""
    if requested > 0:
        return requested
    cpus = os.cpu_count() or 1
    return 1 if cpus <= 2 else min(4, cpus)


def _pool(threads: int) -> ThreadPoolExecutor:
    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="drift")
    return pool


def _not_evaluated(
    profile: Profile,
    config: DriftConfig,
    samples: int,
    invalid_rows: int,
    unknown: tuple[str, ...],
    performance: PerformanceResult | None,
    multivariate_due: bool,
) -> DriftReport:
    note = f"{samples} samples in the window; {config.min_samples} needed before a verdict"
    features = tuple(_skipped(f.name, f.type, note) for f in profile.schema.features)
    multivariate = MultivariateReport.not_checked(note) if multivariate_due else None
    dropped = bool(performance and performance.dropped)
    return DriftReport(
        samples=samples,
        evaluated=False,
        features=features,
        drifted_features=0,
        drifted_share=0.0,
        dataset_drifted=False,
        severity=Severity.HIGH if dropped else Severity.NONE,
        significance=config.significance,
        correction=config.correction.value,
        multivariate=multivariate,
        performance=performance,
        invalid_rows=invalid_rows,
        unknown_columns=unknown,
        note=note,
    )


def _as_output(skipped: FeatureResult, kind: str) -> FeatureResult:
    """A skipped prediction or confidence check, typed like a measured one."""
    return replace(skipped, type=kind)


def _skipped(
    name: str,
    feature_type: FeatureType,
    note: str,
    *,
    absent: bool = False,
    samples: int = 0,
    invalid: InvalidCounts | None = None,
) -> FeatureResult:
    return FeatureResult(
        feature=name,
        type=feature_type.value,
        test="",
        statistic=None,
        p_value=None,
        score=None,
        drifted=False,
        effect_size=None,
        samples=samples,
        invalid=invalid or InvalidCounts(absent=absent),
        note=note,
    )


def _measure_numeric(
    reference: NumericProfile, values: Any, tests: tuple[TestName, ...], config: DriftConfig
) -> _Measured | FeatureResult:
    column = numeric_column(values)
    invalid = InvalidCounts(
        nan=column.nan, infinite=column.infinite, unparseable=column.unparseable
    )
    window = np.sort(column.finite)
    feature_type = FeatureType.NUMERIC
    if window.size < config.min_samples:
        return _skipped(
            reference.name,
            feature_type,
            f"{window.size} valid values; {config.min_samples} needed",
            samples=window.size,
            invalid=invalid,
        )
    if reference.sample.count == 0:
        return _skipped(
            reference.name, feature_type, "the reference has no valid values", invalid=invalid
        )
    need_bins = any(t in (TestName.PSI, TestName.JENSEN_SHANNON) for t in tests) or (
        TestName.KOLMOGOROV_SMIRNOV not in tests
    )
    window_bins = st.bin_counts(window, reference.inner_edges) if need_bins else None
    if TestName.KOLMOGOROV_SMIRNOV in tests:
        ks = st.ks_against_reference(reference.sample, window, reference.cumulative)
        significance_test, statistic, p_value, effect = (
            TestName.KOLMOGOROV_SMIRNOV.value,
            ks.statistic,
            ks.p_value,
            ks.statistic,
        )
    else:
        assert window_bins is not None
        chi = st.chi_square_goodness_of_fit(reference.bin_frequencies, window_bins)
        significance_test, statistic, p_value = "ChiSquareBins", chi.statistic, chi.p_value
        effect = st.total_variation(reference.bin_frequencies, window_bins / window.size)
    scores: list[tuple[TestName, float, float]] = []
    if window_bins is not None and (TestName.PSI in tests or TestName.JENSEN_SHANNON in tests):
        scores += _binned_scores(
            reference.bin_frequencies * reference.sample.count, window_bins, tests, config
        )
    if TestName.WASSERSTEIN in tests:
        distance = st.wasserstein_normalised(reference.grid, window, reference.std)
        scores.append((TestName.WASSERSTEIN, distance, config.wasserstein_threshold))
    return _Measured(
        reference.name,
        feature_type,
        window.size,
        invalid,
        significance_test,
        statistic,
        p_value,
        effect,
        tuple(scores),
        tests,
    )


def _measure_categorical(
    reference: CategoricalProfile, values: Any, tests: tuple[TestName, ...], config: DriftConfig
) -> _Measured | FeatureResult:
    column = categorical_column(values)
    index = reference.index
    counts = np.zeros(len(reference.categories) + 1)  # last slot: not named by the reference
    unseen = 0
    for label, count in zip(column.labels, column.counts.tolist(), strict=True):
        slot = index.get(label)
        if slot is None:
            unseen += count
            slot = (
                len(reference.categories) - 1
                if reference.pooled_other
                else len(reference.categories)
            )
        counts[slot] += count
    invalid = InvalidCounts(nan=column.missing, unseen=unseen)
    total = int(counts.sum())
    if total < config.min_samples:
        return _skipped(
            reference.name,
            FeatureType.CATEGORICAL,
            f"{total} valid values; {config.min_samples} needed",
            samples=total,
            invalid=invalid,
        )
    reference_counts = np.concatenate((reference.counts, [0.0]))
    if reference_counts.sum() == 0:
        return _skipped(
            reference.name,
            FeatureType.CATEGORICAL,
            "the reference has no valid values",
            invalid=invalid,
        )
    chi = st.chi_square_homogeneity(reference_counts, counts)
    effect = st.total_variation(reference_counts / reference_counts.sum(), counts / total)
    scores: list[tuple[TestName, float, float]] = []
    if TestName.PSI in tests or TestName.JENSEN_SHANNON in tests:
        scores += _binned_scores(reference_counts, counts, tests, config)
    return _Measured(
        reference.name,
        FeatureType.CATEGORICAL,
        total,
        invalid,
        TestName.CHI_SQUARE.value,
        chi.statistic,
        chi.p_value,
        effect,
        tuple(scores),
        tests,
    )


def _binned_scores(
    reference_counts: Any, window_counts: Any, tests: tuple[TestName, ...], config: DriftConfig
) -> list[tuple[TestName, float, float]]:
    """PSI and Jensen-Shannon, as chosen, on smoothed bin or category proportions."""
    reference_p = st.smoothed_proportions(reference_counts)
    window_p = st.smoothed_proportions(window_counts)
    scores = []
    if TestName.PSI in tests:
        scores.append((TestName.PSI, st.psi(reference_p, window_p), config.psi_threshold))
    if TestName.JENSEN_SHANNON in tests:
        scores.append(
            (
                TestName.JENSEN_SHANNON,
                st.jensen_shannon(reference_p, window_p),
                config.jensen_shannon_threshold,
            )
        )
    return scores


def _decide(measured: _Measured, corrected_p: float, config: DriftConfig) -> FeatureResult:
    significant = corrected_p <= config.significance
    results: list[TestResult] = []
    if measured.significance_test in (t.value for t in measured.selected):
        results.append(
            TestResult(
                measured.significance_test,
                measured.statistic,
                measured.p_value,
                None,
                config.min_effect_size,
                significant and measured.effect_size >= config.min_effect_size,
            )
        )
    for test, score, threshold in measured.scores:
        results.append(
            TestResult(
                test.value, score, None, score, threshold, significant and score >= threshold
            )
        )
    decided = next((r for r in results if r.drifted), None)
    if decided is None:
        decided = results[0] if results else None
    feature_type = measured.type.value
    if measured.name.startswith("__"):
        feature_type = measured.name.strip("_")
    return FeatureResult(
        feature=measured.name,
        type=feature_type,
        test=decided.test if decided else measured.significance_test,
        statistic=decided.statistic if decided else measured.statistic,
        p_value=corrected_p,
        score=decided.score if decided else None,
        drifted=any(r.drifted for r in results),
        effect_size=measured.effect_size,
        samples=measured.samples,
        tests=tuple(results),
        invalid=measured.invalid,
    )


def _multivariate(profile: Profile, window: Mapping[str, Any]) -> mv.MultivariateResult | str:
    """The check's result, or why it cannot be made."""
    model = profile.multivariate
    assert model is not None
    absent = [name for name in model.features if name not in window]
    if absent:
        return f"no column in the window for {', '.join(absent)}"
    columns = [window[name] for name in model.features]
    rows = len(columns[0])
    if any(len(c) != rows for c in columns):
        return "the window's columns differ in length"
    # subsample before the transform: its cost grows with the rows
    take = None
    if rows > mv.MAX_WINDOW_ROWS:
        take = np.linspace(0, rows - 1, mv.MAX_WINDOW_ROWS).astype(np.int64)
    raw = np.column_stack(
        [as_float(np.asarray(c) if take is None else np.asarray(c)[take])[0] for c in columns]
    )
    raw = raw[np.all(np.isfinite(raw), axis=1)]
    if raw.shape[0] < MULTIVARIATE_MIN_ROWS:
        return (
            f"{raw.shape[0]} rows with a finite number in every feature of the check "
            f"({', '.join(model.features)}); {MULTIVARIATE_MIN_ROWS} needed"
        )
    scores = np.column_stack(
        [profile.numeric[name].normal_scores(raw[:, k]) for k, name in enumerate(model.features)]
    )
    result = mv.evaluate(model, scores)
    return result if result is not None else f"{raw.shape[0]} complete rows; too few"
