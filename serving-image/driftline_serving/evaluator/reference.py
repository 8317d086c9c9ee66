"""Loading the reference profile, and why the evaluator may not be evaluating.

The sidecar shares its pod with the model server: if it exited whenever the reference
could not be loaded, the pod would never become ready and a rollout would stall, so a
drift problem would take serving down. Instead a failed load becomes a `NotEvaluating`
state with a reason, written into the DriftPolicy's status, and the load is retried
with backoff for as long as a retry can help.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from driftline_serving.artifacts import ArtifactError, ArtifactRefused, fetch_artifact
from driftline_serving.drift import Profile, ProfileError, load_profile


class NotEvaluatingReason(StrEnum):
    # The ModelVersion names no reference profile (spec.reference): nothing to compare
    # with, and since its spec is immutable, retrying cannot help.
    NO_REFERENCE_PROFILE = "NoReferenceProfile"
    # The profile could not be fetched (network, HTTP or S3 error, S3 support missing).
    REFERENCE_UNAVAILABLE = "ReferenceUnavailable"
    # It was fetched but cannot be used: wrong sha256, an unsupported URI, not a profile.
    REFERENCE_INVALID = "ReferenceInvalid"


class ReferenceNotLoaded(Exception):
    def __init__(self, reason: NotEvaluatingReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        """A fetch or content problem may be fixed where the profile lives (an upload
        finishing, a bucket coming back); a missing reference cannot change in this pod."""
        return self.reason is not NotEvaluatingReason.NO_REFERENCE_PROFILE


def load_reference(uri: str | None, sha256: str | None, cache_dir: Path) -> Profile:
    """The verified reference profile, or ReferenceNotLoaded saying why not."""
    if not uri:
        raise ReferenceNotLoaded(
            NotEvaluatingReason.NO_REFERENCE_PROFILE,
            "the ModelVersion has no reference profile (spec.reference); "
            "drift cannot be evaluated for it",
        )
    try:
        fetched = fetch_artifact(uri, cache_dir, sha256)
    except ArtifactRefused as error:
        raise ReferenceNotLoaded(
            NotEvaluatingReason.REFERENCE_INVALID, f"reference profile refused: {error}"
        ) from error
    except ArtifactError as error:
        raise ReferenceNotLoaded(
            NotEvaluatingReason.REFERENCE_UNAVAILABLE, f"reference profile unavailable: {error}"
        ) from error
    try:
        return load_profile(fetched.path)
    except ProfileError as error:
        raise ReferenceNotLoaded(
            NotEvaluatingReason.REFERENCE_INVALID,
            f"reference profile {uri} is not a usable profile: {error}",
        ) from error


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter, so replicas do not retry in step."""

    initial_s: float = 5.0
    max_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        base = min(self.initial_s * 2 ** min(max(attempt - 1, 0), 30), self.max_s)
        return base * (0.5 + (rng or random).random() / 2)
