"""Prometheus metrics of the serving process, on a registry of its own.

Label children are bound once up front: ``.labels()`` on every request would cost more
than the rest of the bookkeeping together.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Milliseconds matter for a small model: fine steps below 10 ms, coarse above.
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

OUTCOMES = ("success", "bad_request", "too_large", "not_found", "unavailable", "error")

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


# Every series says which model, which ModelVersion and which rollout track it is from, so
# per-version analysis queries (a canary's error rate against the stable one's) work.
IDENTITY_LABELS = ("model", "version", "track")


class ServerMetrics:
    def __init__(
        self, model_name: str, model_version: str, version: str | None = None, track: str = "stable"
    ) -> None:
        """``model_version``: the served version (/v2/models/M/versions/V); ``version``: the
        ModelVersion's name for the `version` label (default: ``model_version``)."""
        self.registry = CollectorRegistry(auto_describe=True)
        version = version or model_version
        labels = {"model": model_name, "version": version, "track": track}
        requests = Counter(
            "driftline_inference_requests",
            "Inference requests by outcome.",
            [*IDENTITY_LABELS, "outcome"],
            registry=self.registry,
        )
        self._outcomes = {
            outcome: requests.labels(model_name, version, track, outcome) for outcome in OUTCOMES
        }
        self._request_latency = Histogram(
            "driftline_request_duration_seconds",
            "Time from a complete inference request to its response being written.",
            IDENTITY_LABELS,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        ).labels(**labels)
        self._batch_latency = Histogram(
            "driftline_batch_inference_duration_seconds",
            "Time of one onnxruntime call for a whole batch, including the thread hand-off.",
            IDENTITY_LABELS,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        ).labels(**labels)
        self._batch_rows = Histogram(
            "driftline_batch_size_rows",
            "Rows per onnxruntime call.",
            IDENTITY_LABELS,
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self._batch_requests = Histogram(
            "driftline_batch_size_requests",
            "Requests merged into one onnxruntime call.",
            IDENTITY_LABELS,
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        # Read at scrape time rather than set per request: no lock on the request path.
        self.queue_depth_source: Callable[[], int] = lambda: 0
        Gauge(
            "driftline_queue_depth",
            "Requests waiting for the model.",
            IDENTITY_LABELS,
            registry=self.registry,
        ).labels(**labels).set_function(lambda: self.queue_depth_source())
        Gauge(
            "driftline_in_flight_requests",
            "Inference requests received and not yet answered.",
            IDENTITY_LABELS,
            registry=self.registry,
        ).labels(**labels).set_function(lambda: self.in_flight)
        self._ready = Gauge(
            "driftline_model_ready",
            "1 when the model is loaded, verified and warmed up.",
            IDENTITY_LABELS,
            registry=self.registry,
        ).labels(**labels)
        self._model_info = Gauge(
            "driftline_model_info",
            "The model being served; the value is always 1. model_version: the version in "
            "the protocol's paths.",
            [*IDENTITY_LABELS, "model_version", "provider"],
            registry=self.registry,
        )
        self._identity = (model_name, version, track, model_version)
        self.in_flight = 0

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self, outcome: str, seconds: float) -> None:
        self.in_flight -= 1
        self._outcomes[outcome].inc()
        self._request_latency.observe(seconds)

    def request_refused(self, outcome: str) -> None:
        """A request answered before it was ever in flight (not found, too large, ...)."""
        self._outcomes[outcome].inc()

    def batch_ran(self, rows: int, requests: int, seconds: float) -> None:
        self._batch_rows.observe(rows)
        self._batch_requests.observe(requests)
        self._batch_latency.observe(seconds)

    def model_loaded(self, provider: str) -> None:
        self._model_info.labels(*self._identity, provider).set(1)
        self._ready.set(1)

    def model_unready(self) -> None:
        self._ready.set(0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
