"""Where the analysis gates get their measurements: the edge of the analysis package.

- `prometheus`: instant queries against the Prometheus HTTP API, with credentials from
  a Secret.
- `pod_metrics`: the serving pods' own ``/metrics``, for the built-in gates where no
  Prometheus is configured.

Both are synchronous (the operator's reconciles run in threads) and raise typed errors
that the gate evaluation counts as errors, apart from failures.
"""

from driftline.analysis.providers.pod_metrics import (
    PodEndpoint,
    PodMetricsError,
    PodMetricsResponseError,
    PodMetricsUnavailable,
    TrackMetrics,
    read_pod_metrics,
    read_track_metrics,
)
from driftline.analysis.providers.prometheus import (
    PrometheusAuth,
    PrometheusClient,
    PrometheusConfigError,
    PrometheusError,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnavailable,
    auth_from_secret_data,
)

__all__ = [
    "PodEndpoint",
    "PodMetricsError",
    "PodMetricsResponseError",
    "PodMetricsUnavailable",
    "PrometheusAuth",
    "PrometheusClient",
    "PrometheusConfigError",
    "PrometheusError",
    "PrometheusQueryError",
    "PrometheusResponseError",
    "PrometheusUnavailable",
    "TrackMetrics",
    "auth_from_secret_data",
    "read_pod_metrics",
    "read_track_metrics",
]
