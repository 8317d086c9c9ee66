"""Gate verdicts: which verdict the analysis reported for a gate of the rollout in flight."""

from __future__ import annotations

from collections.abc import Sequence

from driftline.api.modeldeployment import ModelDeploymentSpec, StepVerdict
from driftline.rollout.types import Verdict


def gates_configured(spec: ModelDeploymentSpec) -> bool:
    """Whether any analysis gate would run (for now: Prometheus metrics are configured)."""
    return bool(spec.strategy.analysis.metrics)


def latest_verdict(verdicts: Sequence[StepVerdict], gate: str, version: str) -> StepVerdict | None:
    """The newest verdict of `gate` for `version` (by time; the later entry on a tie)."""
    found: StepVerdict | None = None
    for verdict in verdicts:
        if (
            verdict.gate == gate
            and verdict.version == version
            and (found is None or verdict.at >= found.at)
        ):
            found = verdict
    return found


def verdict_of(verdicts: Sequence[StepVerdict], gate: str, version: str) -> Verdict:
    """The gate's verdict; Running until the analysis reported one."""
    found = latest_verdict(verdicts, gate, version)
    return found.verdict if found is not None else "Running"


def verdict_reason(verdicts: Sequence[StepVerdict], gate: str, version: str) -> str:
    found = latest_verdict(verdicts, gate, version)
    return (found.reason or "") if found is not None else ""
