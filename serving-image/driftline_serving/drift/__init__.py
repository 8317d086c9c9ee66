"""The drift statistics engine: reference profiles, tests, windows and verdicts.

The sidecar calls `evaluate(profile, window_columns, config)`; everything it needs to
build a `DriftConfig` from a DriftPolicy is `DriftConfig.from_policy(spec)`.
"""

from driftline_serving.drift.config import ConfigError, DriftConfig
from driftline_serving.drift.engine import evaluate
from driftline_serving.drift.profile import (
    Profile,
    ProfileBuilder,
    ProfileError,
    build_profile,
    load_profile,
    save_profile,
)
from driftline_serving.drift.results import DriftReport, FeatureResult
from driftline_serving.drift.schema import (
    Correction,
    FeatureType,
    Schema,
    SchemaError,
    Severity,
    TestName,
)

__all__ = [
    "ConfigError",
    "Correction",
    "DriftConfig",
    "DriftReport",
    "FeatureResult",
    "FeatureType",
    "Profile",
    "ProfileBuilder",
    "ProfileError",
    "Schema",
    "SchemaError",
    "Severity",
    "TestName",
    "build_profile",
    "evaluate",
    "load_profile",
    "save_profile",
]
