"""The hook where a copy of each inference can leave the request path (for the drift sidecar).

The server calls every registered observer once per successful inference, on the event
loop, after the response has been written, so an observer never delays a client. An
observer must not block: it should sample, copy what it keeps and hand it to a queue or
thread of its own. Its exceptions are logged and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from prometheus_client import CollectorRegistry


@dataclass(frozen=True, slots=True)
class InferenceRecord:
    request_id: str
    model_name: str
    model_version: str
    # Views into request and batch buffers: copy whatever is kept beyond the call.
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    received_at_unix_s: float
    duration_s: float


class InferenceObserver(Protocol):
    def observe(self, record: InferenceRecord) -> None: ...


@runtime_checkable
class FeedbackReceiver(Protocol):
    """An observer that also takes ground-truth labels (POST /v2/models/{name}/feedback)."""

    def feedback(self, request_ids: list[str], labels: list[int | float | str]) -> None: ...


@runtime_checkable
class MetricsSource(Protocol):
    """An observer with metrics of its own, exported on the server's /metrics."""

    def register_metrics(self, registry: CollectorRegistry) -> None: ...
