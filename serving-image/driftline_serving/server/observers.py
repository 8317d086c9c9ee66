"""The hook where a copy of each inference can leave the request path (for the drift sidecar).

The server asks every registered observer once per successful inference, on the event
loop, after the response has been written, so an observer never delays a client: first
`wants()` (a cheap decision, such as a sampling coin flip), and only then, with a record
built, `observe()`. An observer must not block: it hands what it keeps to a queue or a
thread of its own. Its exceptions are logged and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from prometheus_client import CollectorRegistry


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 2 us more per sampled request
class InferenceRecord:
    # the client's id, or None: whoever ships the record names it (a client that wants
    # to send feedback sends its own ids), so the request path builds no string
    request_id: str | None
    model_name: str
    model_version: str
    # Views of the request's decoded body (immutable bytes or fresh arrays) and of the
    # batch's freshly allocated outputs: safe to keep by reference, never to modify.
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    received_at_unix_s: float
    duration_s: float


class InferenceObserver(Protocol):
    def wants(self) -> bool:
        """Asked first, per request: only when it answers True is a record built."""
        ...

    def observe(self, record: InferenceRecord) -> None: ...


@runtime_checkable
class FeedbackReceiver(Protocol):
    """An observer that also takes ground-truth labels (POST /v2/models/{name}/feedback)."""

    def feedback(self, request_ids: list[str], labels: list[int | float | str]) -> None: ...


@runtime_checkable
class MetricsSource(Protocol):
    """An observer with metrics of its own, exported on the server's /metrics."""

    def register_metrics(self, registry: CollectorRegistry) -> None: ...
