"""Gate verdicts: which verdict the analysis reported for a gate of the rollout in flight."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from driftline.api.modeldeployment import StepVerdict
from driftline.rollout.types import Verdict

# The gate name of the analysis that runs over the whole rollout, beside the step gates.
BACKGROUND: Final = "background"


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


def step_verdict(
    verdicts: Sequence[StepVerdict],
    gate: str | None,
    version: str,
    *,
    background: bool,
) -> tuple[Verdict, str, str]:
    """(verdict, reason, deciding gate) of a step: its own gate's verdict (Passed when
    `gate` is None, a step without analysis), overridden by the background analysis when
    that failed (it aborts at any step) or, short of a failed step gate, is inconclusive
    (it holds the rollout, as no data never passes)."""
    own: tuple[Verdict, str, str] = (
        (verdict_of(verdicts, gate, version), verdict_reason(verdicts, gate, version), gate)
        if gate is not None
        else ("Passed", "", "")
    )
    if not background:
        return own
    behind = verdict_of(verdicts, BACKGROUND, version)
    if behind == "Failed" or (behind == "Inconclusive" and own[0] != "Failed"):
        return behind, verdict_reason(verdicts, BACKGROUND, version), BACKGROUND
    return own
