"""The outcome of one measurement, and a gate's verdict.

An expected outcome is a value, never an exception: a query that returned no data, or one
that failed, is as much an answer as a number, and the gate state machine counts each kind
apart (Argo Rollouts' analysis counts errors apart from failures; Flagger's lesson,
fluxcd/flagger#1035, is that no data must never pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The same four verdicts as the rollout engine reads (driftline.api StepVerdict.verdict).
Verdict = Literal["Running", "Passed", "Failed", "Inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("Running", "Passed", "Failed", "Inconclusive")


@dataclass(frozen=True)
class Value:
    """A measured number (may be +/-Inf; never NaN, which is NoData)."""

    value: float


@dataclass(frozen=True)
class NoData:
    """The source answered, with nothing to measure (an empty vector, NaN, too few requests)."""

    reason: str


@dataclass(frozen=True)
class QueryError:
    """The measurement could not be taken: a timeout, a 5xx, bad PromQL, an unusable result."""

    message: str


Outcome = Value | NoData | QueryError


@dataclass(frozen=True)
class GateVerdict:
    """A gate's (or a step's) verdict, with the reason naming the gate and what decided."""

    gate: str
    verdict: Verdict
    reason: str
