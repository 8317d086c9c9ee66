"""Traffic: replicas from a canary weight, and weights that reach only ready pods."""

from __future__ import annotations

import math
from collections.abc import Mapping

from driftline.rollout.types import ObservedTrack


def split_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for a canary `weight` percent of `total`.

    canary = ceil(total * weight / 100), at least 1 while weight > 0; stable = the rest,
    at least 1 while weight < 100. With a small total both floors may hold at once, so the
    two can sum to total + 1 (a 1-replica deployment runs 1 + 1 during a canary).
    """
    if weight < 0 or weight > 100:
        raise ValueError(f"canary weight must be 0..100, got {weight}")
    if total < 0:
        raise ValueError(f"replicas must not be negative, got {total}")
    if total == 0:
        return 0, 0
    canary = math.ceil(total * weight / 100)
    if weight > 0:
        canary = max(canary, 1)
    stable = total - canary
    if weight < 100:
        stable = max(stable, 1)
    return stable, canary


def _apportion(shares: Mapping[str, int], total: int = 100) -> dict[str, int]:
    """Integer parts of `total` proportional to `shares` (largest remainder; ties by name)."""
    whole = sum(shares.values())
    exact = {name: total * share / whole for name, share in shares.items()}
    parts = {name: math.floor(value) for name, value in exact.items()}
    left = total - sum(parts.values())
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - parts[name]), name))
    for name in by_remainder[:left]:
        parts[name] += 1
    return parts


def route(nominal: Mapping[str, int], observed: Mapping[str, ObservedTrack]) -> dict[str, int]:
    """The weights to send: the nominal split among the tracks that have ready pods.

    A track without a ready pod gets nothing and its share goes to the others, so
    traffic only ever reaches ready pods. When no weighted track has a ready pod there is
    nowhere better to send it: the nominal split stands. Tracks left at 0 are omitted.
    """
    weighted = {track: weight for track, weight in nominal.items() if weight > 0}
    live = {
        track: weight
        for track, weight in weighted.items()
        if track in observed and observed[track].ready > 0
    }
    chosen = live or weighted
    if not chosen:
        return {}
    return {track: part for track, part in _apportion(chosen).items() if part > 0}


def serving_ready(weights: Mapping[str, int], observed: Mapping[str, ObservedTrack]) -> int:
    """Ready pods on the tracks that get traffic."""
    return sum(
        observed[track].ready
        for track, weight in weights.items()
        if weight > 0 and track in observed
    )
