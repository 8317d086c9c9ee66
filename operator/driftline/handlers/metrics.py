"""Prometheus metrics of the operator: reconcile counts, durations and errors per kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "driftline_operator_reconciles_total",
    "Reconciliations by resource kind and outcome (success, retry).",
    ["kind", "outcome"],
)
RECONCILE_SECONDS = Histogram(
    "driftline_operator_reconcile_duration_seconds",
    "Time one reconciliation took, by resource kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = Counter(
    "driftline_operator_reconcile_errors_total",
    "Failed reconciliations by resource kind and reason (error class).",
    ["kind", "reason"],
)

ANALYSIS_MEASUREMENTS = Counter(
    "driftline_analysis_measurements_total",
    "Analysis gate measurements by phase (Successful, Failed, NoData, Error).",
    ["namespace", "deployment", "gate", "phase"],
)
ANALYSIS_VERDICTS = Counter(
    "driftline_analysis_verdicts_total",
    "Verdicts of analysis gates at the end of their run (Passed, Failed, Inconclusive).",
    ["namespace", "deployment", "gate", "verdict"],
)
ANALYSIS_RUNS = Counter(
    "driftline_analysis_runs_total",
    "Analysis runs ended, by run (step-N, pre-promotion, post-promotion, background) and verdict.",
    ["namespace", "deployment", "run", "verdict"],
)

ROLLBACKS = Counter(
    "driftline_rollbacks_total",
    "Drift rollbacks carried out (a drifted stable version, or a drifted rollout aborted).",
    ["namespace", "deployment"],
)
RETRAINING_JOBS = Counter(
    "driftline_retraining_jobs_total",
    "Retraining runs ended, by outcome (succeeded, failed, rejected by the validation gate).",
    ["namespace", "policy", "outcome"],
)


@contextmanager
def measured(kind: str) -> Iterator[None]:
    """Count and time one reconciliation; an exception counts as a retry (every failed
    reconcile is tried again by the work queue) under the error's class."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        RECONCILES.labels(kind, "retry").inc()
        RECONCILE_ERRORS.labels(kind, type(error).__name__).inc()
        raise
    else:
        RECONCILES.labels(kind, "success").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
