"""DriftPolicy: what drift means for one ModelDeployment, and what to do about it."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator
from pydantic.config import JsonDict

from driftline.api.common import (
    CONDITIONS_FIELD_DESCRIPTION,
    DNS_SUBDOMAIN,
    DNS_SUBDOMAIN_MAX,
    ApiModel,
    Condition,
    ResourceModel,
    cel,
)
from driftline.api.validation import validate_rules, validate_schema
from driftline.vocabulary import CATEGORICAL_TESTS, NUMERIC_TESTS, Correction, Severity, TestName

# The string values are the drift engine's own (driftline_serving.drift); they pass through unchanged.
SUPPORTED_TARGET_KINDS = ("ModelDeployment",)


def _string_list_in(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


DriftTest = TestName  # the resource's name for the engine's tests


class ActionType(StrEnum):
    ALERT = "Alert"
    ROLLBACK = "Rollback"
    RETRAIN = "Retrain"


class TargetRef(ApiModel):
    """The object whose traffic is watched."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.kind in {_string_list_in(SUPPORTED_TARGET_KINDS)}",
                    "kind must be one of: " + ", ".join(SUPPORTED_TARGET_KINDS),
                    field_path=".kind",
                ),
            ]
        }
    )

    api_version: Literal["driftline.io/v1alpha1"] = Field(
        "driftline.io/v1alpha1", description="API version of the target."
    )
    kind: str = Field(
        "ModelDeployment", description="Kind of the target: ModelDeployment.", max_length=63
    )
    name: str = Field(
        description="Name of the target in the same namespace.",
        pattern=DNS_SUBDOMAIN,
        max_length=DNS_SUBDOMAIN_MAX,
    )


class Sampling(ApiModel):
    """Which requests the server hands to the drift sidecar."""

    rate: float = Field(0.1, description="Fraction of requests sampled, 0 to 1.", ge=0, le=1)
    queue_size: int = Field(
        10000, description="Samples buffered before new ones are dropped (and counted).", ge=1
    )


class Window(ApiModel):
    """The live window compared with the reference."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minSamples <= self.size", "minSamples must not exceed size"),
            ]
        }
    )

    size: int = Field(1000, description="Most recent samples kept.", ge=10, le=10_000_000)
    min_samples: int = Field(100, description="Samples needed before any verdict.", ge=1)
    max_age_seconds: int | None = Field(
        None, description="Also drop samples older than this (time-based window).", ge=1
    )
    interval_seconds: int = Field(60, description="Time between evaluations.", ge=1)


class FeatureTests(ApiModel):
    """Tests for one named feature, overriding the choice by type."""

    feature: str = Field(description="Feature name.", min_length=1, max_length=256)
    tests: list[DriftTest] = Field(description="Tests to run.", min_length=1, max_length=5)


class Tests(ApiModel):
    """Which statistical tests run. By default: KS, PSI, JS and Wasserstein for numeric
    features; chi-square, PSI and JS for categorical ones."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!has(self.categorical) || self.categorical.all(t, t in {_string_list_in(CATEGORICAL_TESTS)})",
                    "categorical features support only " + ", ".join(CATEGORICAL_TESTS),
                    field_path=".categorical",
                ),
                cel(
                    f"!has(self.numeric) || self.numeric.all(t, t in {_string_list_in(NUMERIC_TESTS)})",
                    "numeric features support only " + ", ".join(NUMERIC_TESTS),
                    field_path=".numeric",
                ),
            ]
        }
    )

    numeric: list[DriftTest] | None = Field(
        None, description="Tests for numeric features; auto-selected when unset.", max_length=5
    )
    categorical: list[DriftTest] | None = Field(
        None, description="Tests for categorical features; auto-selected when unset.", max_length=5
    )
    per_feature: list[FeatureTests] = Field(
        default_factory=list,
        description="Overrides for single features.",
        max_length=1000,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["feature"],
        },
    )


class Thresholds(ApiModel):
    """Score thresholds above which a distance-based test calls drift."""

    psi: float = Field(0.2, description="Population stability index.", gt=0)
    jensen_shannon: float = Field(0.1, description="Jensen-Shannon distance (base 2).", gt=0, le=1)
    wasserstein: float = Field(
        0.1,
        description="Wasserstein distance normalised by the reference's standard deviation.",
        gt=0,
    )


class PredictionDrift(ApiModel):
    """Drift of the model's outputs."""

    enabled: bool = Field(
        True, description="Compare the output class distribution (Jensen-Shannon)."
    )
    confidence: bool = Field(True, description="Also compare the distribution of the top score.")


# The sidecar's default too (driftline_serving.evaluator.predictions); a test keeps them equal.
DEFAULT_SCORE_BIN_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class PredictionSummarySettings(ApiModel):
    """The summary of predictions each pod's sidecar adds to its report, per model output:
    class counts, or counts on fixed score bins. The canary's and the stable's sidecars read
    the same policy, so they count on the same bins and a rollout can compare them."""

    enabled: bool = Field(True, description="Add the summary to each pod's report.")
    score_bin_edges: list[float] = Field(
        default_factory=lambda: list(DEFAULT_SCORE_BIN_EDGES),
        description="Inner edges of the bins that single-valued float outputs (scores) are "
        "counted on: (-inf, e0], (e0, e1], ..., (eLast, +inf). Strictly increasing. Default "
        "0.1 to 0.9 in steps of 0.1, for probabilities.",
        min_length=1,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                cel("self.isSorted()", "scoreBinEdges must strictly increase"),
            ],
        },
    )
    max_classes: int = Field(
        20,
        description="Classes counted per output, the most frequent first; the rest are "
        "summed as `other`.",
        ge=1,
        le=100,
    )

    @field_validator("score_bin_edges")
    @classmethod
    def _edges_increase(cls, edges: list[float]) -> list[float]:
        if not all(math.isfinite(edge) for edge in edges):
            raise ValueError(f"scoreBinEdges must be finite numbers: {edges}")
        if any(a >= b for a, b in itertools.pairwise(edges)):
            raise ValueError(f"scoreBinEdges must strictly increase: {edges}")
        return edges


class Performance(ApiModel):
    """Performance drift from delayed ground-truth labels."""

    metric: Literal["accuracy", "f1"] = Field("accuracy", description="accuracy or macro f1.")
    min_labels: int = Field(100, description="Labels needed before a verdict.", ge=1)
    max_absolute_drop: float | None = Field(
        0.05,
        description="Drift when the metric falls this much below the offline value.",
        gt=0,
        le=1,
    )
    max_relative_drop: float | None = Field(
        None,
        description="Drift when the metric falls by this fraction of the offline value.",
        gt=0,
        le=1,
    )
    baseline_metric: str = Field(
        "accuracy",
        description="Key in the ModelVersion's spec.metrics to compare with.",
        min_length=1,
        max_length=256,
    )


class Hysteresis(ApiModel):
    """Damping against flapping."""

    consecutive_windows: int = Field(
        3, description="A verdict must hold this many evaluations in a row before it counts.", ge=1
    )
    cooldown_seconds: int = Field(
        3600,
        description="Damping after drift: once a pod's confirmed drift clears, its drifted "
        "windows do not count toward consecutiveWindows for this long, and once the operator "
        "has acted (an Alert), it does not act again for this long. 0: no cooldown.",
        ge=0,
    )


class ActionRule(ApiModel):
    """Do `action` when drift of at least `severity` is confirmed."""

    severity: Literal["Low", "Medium", "High"] = Field(description="Lowest severity that triggers.")
    action: ActionType = Field(description="Alert, Rollback or Retrain.")


def _default_actions() -> list[ActionRule]:
    return [ActionRule(severity="Low", action=ActionType.ALERT)]


# --- the retraining Job: a JobSpec, kept as written, with its dangerous fields refused ---
#
# The operator creates the Job with its own rights, so a DriftPolicy author must not get a
# privileged Pod, the node's namespaces or its filesystem through it. The schema declares
# only the fields it checks (the rest of the JobSpec is kept as written) and refuses what
# the Baseline Pod Security Standard forbids, plus running as root. Rules sit on the
# Pod spec and on each container, whose presence they guard, so every message names the
# field and the reason.


def _open_object(description: str, properties: dict[str, Any] | None = None) -> JsonDict:
    node: JsonDict = {
        "type": "object",
        "description": description,
        "x-kubernetes-preserve-unknown-fields": True,
    }
    if properties:
        node["properties"] = properties
    return node


def _field(kind: str, description: str) -> JsonDict:
    return {"type": kind, "description": description}


def _not_true(path: str, field: str, reason: str) -> JsonDict:
    """`path.field` may be absent or false, never true."""
    guard = _presence_guard(path, field)
    return cel(f"{guard} || !self.{path}{field}", reason, field_path=f".{path}{field}")


def _presence_guard(path: str, field: str) -> str:
    parts = [p for p in path.split(".") if p] + [field]
    return " || ".join(f"!has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))


_SECURITY_CONTEXT_FIELDS: dict[str, Any] = {
    "privileged": _field("boolean", "Run the container privileged: not allowed."),
    "allowPrivilegeEscalation": _field("boolean", "Allow setuid escalation: not allowed."),
    "runAsUser": _field("integer", "User id; 0 (root) is not allowed."),
    "capabilities": _open_object(
        "Linux capabilities; only NET_BIND_SERVICE may be added.",
        {
            "add": {
                "type": "array",
                "description": "Capabilities to add.",
                "maxItems": 64,
                "items": {"type": "string", "maxLength": 64},
            }
        },
    ),
}
_CONTAINER_RULES: list[JsonValue] = [
    _not_true("securityContext.", "privileged", "privileged containers are not allowed"),
    _not_true(
        "securityContext.",
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation must not be true",
    ),
    cel(
        f"{_presence_guard('securityContext.', 'runAsUser')} || self.securityContext.runAsUser != 0",
        "containers must not run as root (runAsUser 0)",
        field_path=".securityContext.runAsUser",
    ),
    cel(
        f"{_presence_guard('securityContext.capabilities.', 'add')}"
        " || self.securityContext.capabilities.add.all(c, c == 'NET_BIND_SERVICE')",
        "adding capabilities is not allowed (only NET_BIND_SERVICE)",
        field_path=".securityContext.capabilities.add",
    ),
]


def _containers(description: str) -> JsonDict:
    container = _open_object(
        "A container.",
        {
            "securityContext": _open_object(
                "The container's security context.", _SECURITY_CONTEXT_FIELDS
            )
        },
    )
    container["x-kubernetes-validations"] = _CONTAINER_RULES
    return {"type": "array", "description": description, "maxItems": 64, "items": container}


_POD_SPEC = _open_object(
    "The Pod spec of the Job's Pods.",
    {
        "hostPID": _field("boolean", "Share the node's process namespace: not allowed."),
        "hostIPC": _field("boolean", "Share the node's IPC namespace: not allowed."),
        "hostNetwork": _field("boolean", "Use the node's network namespace: not allowed."),
        "securityContext": _open_object(
            "The Pod's security context.",
            {"runAsUser": _field("integer", "User id; 0 (root) is not allowed.")},
        ),
        "containers": _containers("The Job's containers."),
        "initContainers": _containers("Init containers."),
        "ephemeralContainers": _containers("Ephemeral containers."),
        "volumes": {
            "type": "array",
            "description": "Volumes; hostPath volumes are not allowed.",
            "maxItems": 256,
            "items": {
                **_open_object(
                    "A volume.", {"hostPath": _open_object("A node directory: not allowed.")}
                ),
                "x-kubernetes-validations": [
                    cel(
                        "!has(self.hostPath)",
                        "hostPath volumes are not allowed",
                        field_path=".hostPath",
                    )
                ],
            },
        },
    },
)
_POD_SPEC["x-kubernetes-validations"] = [
    _not_true("", "hostPID", "hostPID is not allowed"),
    _not_true("", "hostIPC", "hostIPC is not allowed"),
    _not_true("", "hostNetwork", "hostNetwork is not allowed"),
    cel(
        f"{_presence_guard('securityContext.', 'runAsUser')} || self.securityContext.runAsUser != 0",
        "Pods must not run as root (runAsUser 0)",
        field_path=".securityContext.runAsUser",
    ),
]
# No description at the top: the field's own describes it.
JOB_TEMPLATE_SCHEMA: JsonDict = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"template": _open_object("The Pod template.", {"spec": _POD_SPEC})},
}


class Validation(ApiModel):
    """The gate a retrained version's offline metrics must pass before it may roll out."""

    min_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Smallest acceptable value per metric, for example accuracy: 0.9. A "
        "metric the Job does not report fails the gate.",
        max_length=32,
    )
    max_drop_from_parent: dict[str, float] = Field(
        default_factory=dict,
        description="Most a metric may fall below the parent version's own value (its "
        "spec.metrics), for example accuracy: 0.02.",
        max_length=32,
    )


class Retraining(ApiModel):
    """The Job that retrains the model, and what happens to its result."""

    job_template: dict[str, Any] = Field(
        description="A batch/v1 JobSpec. The Job gets DRIFTLINE_* variables and reports its artifact in its termination message. Its Pods must meet the Baseline Pod Security Standard: no privileged or root containers, no privilege escalation or added capabilities, no host namespaces or hostPath volumes.",
        json_schema_extra=JOB_TEMPLATE_SCHEMA,
    )
    promotion: Literal["Canary", "Manual"] = Field(
        "Canary",
        description="Canary: the new ModelVersion rolls out through the deployment's gated strategy. Manual: it is only created.",
    )
    active_deadline_seconds: int = Field(
        6 * 3600, description="Longest a retraining Job may run.", ge=60
    )
    output_uri: str | None = Field(
        None,
        description="Where Jobs write their artifacts: a prefix (s3://bucket/path/ or "
        "https://...); each Job gets its own folder under it in DRIFTLINE_OUTPUT_URI. "
        "Unset: the Job's own arguments say where.",
        min_length=1,
        max_length=1024,
    )
    max_concurrent: int = Field(
        1, description="Retraining Jobs of this policy that may run at once.", ge=1, le=10
    )
    cooldown_seconds: int = Field(
        3600,
        description="Least time between two retraining triggers of this policy.",
        ge=0,
    )
    validation: Validation = Field(
        default_factory=Validation,
        description="Offline metrics a retrained version must reach; one that falls short "
        "is created, marked rejected with its numbers, and never rolled out.",
    )

    @field_validator("job_template")
    @classmethod
    def _job_template_is_safe(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The same checks as the CRD's, so the operator refuses what an older CRD let in."""
        errors = validate_schema(JOB_TEMPLATE_SCHEMA, value, "jobTemplate")
        errors += validate_rules(JOB_TEMPLATE_SCHEMA, value, None, "jobTemplate")
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))
        return value


class DriftPolicySpec(ApiModel):
    """Desired state of a DriftPolicy."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.actions.exists(a, a.action == 'Retrain') || has(self.retraining)",
                    "a Retrain action needs retraining.jobTemplate",
                    field_path=".retraining",
                ),
            ]
        }
    )

    target_ref: TargetRef = Field(description="The ModelDeployment to watch.")
    sampling: Sampling = Field(default_factory=Sampling, description="Request sampling.")
    window: Window = Field(default_factory=Window, description="Live window.")
    tests: Tests = Field(default_factory=Tests, description="Statistical tests.")
    significance: float = Field(
        0.05, description="Family-wise significance level of the p-value tests.", gt=0, le=0.5
    )
    correction: Correction = Field(
        Correction.BENJAMINI_HOCHBERG, description="Multiple-testing correction over features."
    )
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Score thresholds.")
    prediction_drift: PredictionDrift = Field(
        default_factory=PredictionDrift, description="Output drift checks."
    )
    performance: Performance | None = Field(
        None, description="Label-based performance checks; off when unset."
    )
    prediction_summary: PredictionSummarySettings = Field(
        default_factory=PredictionSummarySettings,
        description="The per-output prediction counts in each pod's report.",
    )
    hysteresis: Hysteresis = Field(default_factory=Hysteresis, description="Damping.")
    actions: list[ActionRule] = Field(
        default_factory=_default_actions,
        description="What to do by severity. Default: alert on any confirmed drift.",
        max_length=9,
    )
    retraining: Retraining | None = Field(None, description="Retraining Job, for Retrain actions.")


class FeatureResult(ApiModel):
    """One feature's verdict in one evaluation."""

    name: str = Field(description="Feature name.")
    test: str = Field(description="Test that decided.")
    statistic: float | None = Field(None, description="Test statistic.")
    p_value: float | None = Field(None, description="Corrected p-value, for hypothesis tests.")
    score: float | None = Field(None, description="Distance score, for PSI, JS and Wasserstein.")
    drifted: bool = Field(description="The feature's verdict.")


class PerformanceReading(ApiModel):
    """The model's metric on the window's labelled predictions (spec.performance)."""

    metric: str = Field(description="accuracy or f1.", max_length=64)
    value: float | None = Field(
        None, description="The metric on the labelled predictions; none under minLabels."
    )
    baseline: float = Field(description="The ModelVersion's offline value it is compared with.")
    labels: int = Field(description="Labels joined to predictions in the window.", ge=0)
    dropped: bool = Field(description="The metric fell past the policy's allowed drop.")


class Evaluation(ApiModel):
    """One evaluation of a window."""

    time: datetime = Field(description="When it ran.")
    samples: int = Field(description="Samples in the window.", ge=0)
    invalid_samples: int = Field(0, description="Samples skipped as invalid.", ge=0)
    drifted: bool = Field(description="Dataset-level verdict.")
    severity: Severity = Field(description="None, Low, Medium or High.")
    features: list[FeatureResult] = Field(
        default_factory=list, description="Per-feature results.", max_length=1000
    )
    performance: PerformanceReading | None = Field(
        None,
        description="The model's measured performance from labels fed back, when "
        "spec.performance is set and the ModelVersion has the baseline metric.",
    )


class ClassCount(ApiModel):
    """Predictions of one class."""

    name: str = Field(
        description="The class: its index (class scores) or label (integer outputs), or "
        "`other` for the classes past maxClasses.",
        min_length=1,
        max_length=64,
    )
    count: int = Field(description="Predictions of the class in the window.", ge=0)


class OutputPredictions(ApiModel):
    """How one model output's predictions in the evaluated window are distributed.

    Written by the sidecar and read by the rollout gates, which check its consistency
    (driftline.analysis.pod_reports): no rules here, so one odd report can never stop the
    whole status from being written or read."""

    output: str = Field(description="The model output's name.", min_length=1, max_length=256)
    kind: Literal["Classes", "Scores"] = Field(
        description="Classes: the predicted class per row (argmax of class scores, or an "
        "integer label). Scores: a single float per row, counted on the policy's bins."
    )
    classes: list[ClassCount] | None = Field(
        None,
        description="Counts per class, the most frequent first, then `other`.",
        max_length=101,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    bin_edges: list[float] | None = Field(
        None, description="The bins' inner edges (spec.predictionSummary).", max_length=64
    )
    bin_counts: list[int] | None = Field(
        None,
        description="Counts on (-inf, e0], (e0, e1], ..., (eLast, +inf).",
        max_length=65,
    )
    invalid: int = Field(0, description="Rows with a non-finite value, not counted.", ge=0)


class PodReport(ApiModel):
    """The latest evaluation of one serving pod's evaluator, or why it is not evaluating."""

    state: Literal["Evaluating", "NotEvaluating"] = Field(
        "Evaluating",
        description="Evaluating: `evaluation` is its latest. NotEvaluating: drift is not "
        "watched on this pod (it keeps serving); `reason` says why.",
    )
    reason: str | None = Field(
        None,
        description="Why not evaluating: NoReferenceProfile, ReferenceUnavailable or "
        "ReferenceInvalid.",
        max_length=64,
    )
    message: str | None = Field(None, description="Details of `reason`.", max_length=1024)
    evaluation: Evaluation | None = Field(None, description="Latest evaluation.")
    consecutive_drifted: int = Field(
        0, description="Drifted evaluations in a row that count toward confirmation.", ge=0
    )
    cooldown_until: datetime | None = Field(
        None, description="Until when drifted windows do not count (hysteresis cooldown)."
    )
    model_version: str | None = Field(None, description="ModelVersion the pod serves.")
    predictions: list[OutputPredictions] | None = Field(
        None,
        description="Per model output, the predictions of the window that `evaluation` "
        "evaluated (at its time), counted by class or on spec.predictionSummary's score bins.",
        max_length=8,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["output"],
        },
    )


class RetrainingRun(ApiModel):
    """One retraining trigger: recorded before its Job is created, so that exactly one Job
    exists per trigger whatever the reconciles, replicas or restarts."""

    trigger: str = Field(description="The trigger's id.", max_length=128)
    job: str = Field(description="Name of its Job.", max_length=63)
    model_version: str = Field(description="Name of the ModelVersion it creates.", max_length=253)
    parent: str = Field(description="The ModelVersion that drifted.", max_length=253)
    severity: Severity = Field(description="The drift's severity.")
    features: list[str] = Field(
        default_factory=list, description="The drifted features.", max_length=64
    )
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Rejected"] = Field(
        description="Pending (recorded, no Job yet), Running, Succeeded (the ModelVersion is "
        "created), Failed (the Job failed or reported no valid result) or Rejected (created, "
        "below the validation gate)."
    )
    message: str | None = Field(
        None, description="What happened, with the numbers.", max_length=1024
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="The Job's offline metrics.", max_length=32
    )
    triggered_at: datetime = Field(description="When drift triggered it.")
    finished_at: datetime | None = Field(None, description="When it ended.")


class RollbackTrigger(ApiModel):
    """A rollback this policy asked of its deployment: traffic off `version`."""

    version: str = Field(description="The ModelVersion that drifted.", max_length=253)
    severity: Severity = Field(description="The drift's severity.")
    features: list[str] = Field(
        default_factory=list, description="The drifted features.", max_length=64
    )
    at: datetime = Field(description="When it was asked for.")
    message: str | None = Field(None, description="The drift behind it.", max_length=1024)


class DriftPolicyStatus(ApiModel):
    """Observed state of a DriftPolicy."""

    observed_generation: int | None = Field(None, description="Generation last acted on.")
    severity: Severity = Field(Severity.NONE, description="Confirmed severity over all pods.")
    last_evaluation: Evaluation | None = Field(None, description="Latest combined evaluation.")
    pods: dict[str, PodReport] = Field(
        default_factory=dict,
        description="Latest report per serving pod, keyed by pod name; reports of gone pods are pruned.",
    )
    last_action: str | None = Field(None, description="Last action taken.")
    last_action_time: datetime | None = Field(None, description="When it was taken (for cooldown).")
    retrainings: list[RetrainingRun] = Field(
        default_factory=list,
        description="Retraining triggers of this policy, newest last (the last 10).",
        max_length=10,
    )
    retraining_count: int = Field(
        0, description="Retraining triggers so far; numbers the next Job.", ge=0
    )
    rollback: RollbackTrigger | None = Field(
        None, description="The latest rollback this policy asked of its deployment."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=CONDITIONS_FIELD_DESCRIPTION
        + " Types: Ready, TargetFound, Evaluating, Drifted, Supported.",
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class DriftPolicy(ResourceModel):
    """What drift means for one ModelDeployment, and what to do about it."""

    kind_name: ClassVar[str] = "DriftPolicy"
    plural: ClassVar[str] = "driftpolicies"
    short_names: ClassVar[tuple[str, ...]] = ("dp",)
    printer_columns: ClassVar[tuple[dict[str, str], ...]] = (
        {"name": "Target", "type": "string", "jsonPath": ".spec.targetRef.name"},
        {
            "name": "Drift",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Drifted")].status',
        },
        {"name": "Severity", "type": "string", "jsonPath": ".status.severity"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    kind: Literal["DriftPolicy"] = Field("DriftPolicy", description="DriftPolicy.")
    spec: DriftPolicySpec = Field(description="Drift definition and actions.")
    status: DriftPolicyStatus | None = Field(
        None, description="Written by the operator and evaluators."
    )
