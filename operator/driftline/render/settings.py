"""Operator-wide settings the renderers need (image, cluster domain, sizes)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_SERVING_IMAGE = "ghcr.io/driftline/driftline-serving:0.1.0"


@dataclass(frozen=True, slots=True)
class RenderSettings:
    serving_image: str = DEFAULT_SERVING_IMAGE
    image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    # The verification Job holds the whole ONNX graph in memory while reading it.
    verify_memory_limit: str = "2Gi"
    verify_deadline_seconds: int = 900
    evaluator_port: int = 9090
    extra_pod_labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RenderSettings:
        """DRIFTLINE_SERVING_IMAGE and DRIFTLINE_CLUSTER_DOMAIN override the defaults."""
        env = os.environ if environ is None else environ
        return cls(
            serving_image=env.get("DRIFTLINE_SERVING_IMAGE") or DEFAULT_SERVING_IMAGE,
            cluster_domain=env.get("DRIFTLINE_CLUSTER_DOMAIN") or "cluster.local",
        )
