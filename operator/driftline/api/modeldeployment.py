"""ModelDeployment: serve a ModelVersion and move between versions safely."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, JsonValue, StringConstraints

from driftline.api.common import (
    CONDITIONS_FIELD_DESCRIPTION,
    DNS_LABEL,
    DNS_LABEL_MAX,
    DNS_SUBDOMAIN,
    DNS_SUBDOMAIN_MAX,
    HOSTNAME,
    IMAGE_MAX,
    QUALIFIED_NAME,
    QUALIFIED_NAME_MAX,
    URI_MAX,
    ApiModel,
    Condition,
    LabelValue,
    QualifiedName,
    Quantity,
    ResourceModel,
    SecretReference,
    Toleration,
    cel,
    cel_string,
)

# The Prometheus URL is fetched by the operator, inside the cluster: it must never reach
# the node's link-local addresses, where clouds serve instance credentials. The pattern
# admits only http(s) with a plain host (a DNS name, dotted IPv4 or bracketed IPv6: no user
# info, no backslash, no non-ASCII, no trailing dot), so that the host is the text right
# after '://' for Kubernetes' Go parser and Python's alike, and rules on it are exact.
PROMETHEUS_URL_PATTERN = (
    r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*)(:[0-9]{1,5})?([/?#]\S*)?$"
)
_HOST_END = r"(:[0-9]+)?([/?#]|$)"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_LINK_LOCAL_OR_METADATA = (
    r"(?i)^https?://(169\.254\.[0-9]+\.[0-9]+|\[fe[89ab][0-9a-f]:[^\]]*\]"
    r"|\[fd00:0?ec2:[^\]]*\]|metadata|metadata\.google\.internal)" + _HOST_END
)
# glibc reads 2852039166, 0xa9fea9fe or 0251.0376.0251.0376 as 169.254.169.254: a host
# that ends in a number must be four plain decimal octets.
_NUMERIC_HOST = r"(?i)^https?://([^/?#:\[]*\.)?(0x[0-9a-f]*|[0-9]+)" + _HOST_END
_DOTTED_QUAD_HOST = r"^https?://(" + _OCTET + r"\.){3}" + _OCTET + _HOST_END
# ::ffff:169.254.169.254 (or its hex form) reaches the IPv4 address: write that instead.
_IPV4_IN_IPV6_HOST = (
    r"(?i)^https?://\[([^\]]*\.[^\]]*|[0-9a-f:]*:ffff(:0{1,4})?:[0-9a-f]{1,4}:[0-9a-f]{1,4})\]"
)
PROMETHEUS_URL_RULES: list[JsonValue] = [
    cel(
        f"!self.matches({cel_string(_LINK_LOCAL_OR_METADATA)})",
        "must not point at a link-local or cloud metadata address (169.254.0.0/16, "
        "fe80::/10, fd00:ec2::/32, metadata.google.internal)",
    ),
    cel(
        f"!self.matches({cel_string(_NUMERIC_HOST)}) || self.matches({cel_string(_DOTTED_QUAD_HOST)})",
        "an IPv4 host must be four decimal numbers 0-255 without leading zeros",
    ),
    cel(
        f"!self.matches({cel_string(_IPV4_IN_IPV6_HOST)})",
        "an IPv6 host must not embed an IPv4 address; write the IPv4 address itself",
    ),
]


Hostname = Annotated[
    str, StringConstraints(pattern=HOSTNAME, min_length=1, max_length=DNS_SUBDOMAIN_MAX)
]


class DeploymentPhase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"


class StrategyType(StrEnum):
    CANARY = "Canary"
    BLUE_GREEN = "BlueGreen"
    ROLLING = "Rolling"


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the ModelDeployment (its scale subresource)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minReplicas <= self.maxReplicas",
                    "minReplicas must not exceed maxReplicas",
                ),
                cel(
                    "has(self.targetCPUUtilization) || has(self.targetInflightRequests)",
                    "set targetCPUUtilization, targetInflightRequests or both",
                ),
            ]
        }
    )

    min_replicas: int = Field(1, description="Fewest serving replicas.", ge=1, le=1000)
    max_replicas: int = Field(description="Most serving replicas.", ge=1, le=1000)
    target_cpu_utilization: int | None = Field(
        None,
        alias="targetCPUUtilization",
        description="Average CPU utilisation, in percent of requests, to scale on.",
        ge=1,
        le=100,
    )
    target_inflight_requests: int | None = Field(
        None,
        description="Average in-flight inference requests per pod to scale on (custom metric).",
        ge=1,
    )


class Resources(ApiModel):
    """CPU and memory for the serving container, as Kubernetes quantities."""

    requests: dict[QualifiedName, Quantity] = Field(
        default_factory=lambda: {"cpu": "500m", "memory": "512Mi"},
        description="Requested resources, for example cpu: 500m, memory: 512Mi. Quantities are never negative.",
        max_length=32,
    )
    limits: dict[QualifiedName, Quantity] = Field(
        default_factory=lambda: {"memory": "1Gi"},
        description="Resource limits. The server sizes its thread pool from the CPU limit.",
        max_length=32,
    )


class GPU(ApiModel):
    """GPU scheduling: a whole-GPU count or a MIG slice, and where such nodes are."""

    count: int = Field(
        1, description="How many GPUs (or MIG slices) each replica gets.", ge=1, le=16
    )
    resource_name: str = Field(
        "nvidia.com/gpu",
        description="Extended resource to request: nvidia.com/gpu, or a MIG profile such as nvidia.com/mig-1g.10gb.",
        pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$",
        max_length=QUALIFIED_NAME_MAX,
    )
    node_selector: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict,
        description="Node labels a GPU node must carry: label keys and values.",
        max_length=64,
    )
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [
            Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        ],
        description="Tolerations for GPU node taints.",
        max_length=32,
    )
    runtime_class_name: str | None = Field(
        None,
        description="RuntimeClass for the GPU container runtime, for example nvidia.",
        pattern=DNS_SUBDOMAIN,
        max_length=DNS_SUBDOMAIN_MAX,
    )
    rollout_budget: int | None = Field(
        None,
        description="Extra GPUs (or MIG slices) a rollout may request beyond the stable "
        "track's; when the new version needs more, the stable track scales down as it "
        "scales up. Unset: no limit.",
        ge=0,
        le=4096,
    )


class TopologySpread(ApiModel):
    """Spread replicas across failure domains."""

    topology_key: str = Field(
        "kubernetes.io/hostname",
        description="Node label that defines a domain (a label key).",
        pattern=QUALIFIED_NAME,
        max_length=QUALIFIED_NAME_MAX,
    )
    max_skew: int = Field(1, description="Largest allowed difference between domains.", ge=1)


class Serving(ApiModel):
    """How the model server runs."""

    image: str | None = Field(
        None,
        description="Serving image; the operator's configured image when unset.",
        pattern=r"^\S+$",
        max_length=IMAGE_MAX,
    )
    port: int = Field(
        8080, description="HTTP port of the Open Inference Protocol server.", ge=1, le=65535
    )
    max_batch_size: int = Field(32, description="Largest dynamic batch.", ge=1, le=4096)
    max_batch_delay_ms: float = Field(
        1.0, description="Longest time a request waits for others to join its batch.", ge=0, le=1000
    )
    intra_op_threads: int = Field(
        0,
        description="onnxruntime intra-op threads; 0 matches the container's CPU limit.",
        ge=0,
        le=256,
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, description="Largest accepted request body.", ge=1024
    )


class CanaryStep(ApiModel):
    """Send `weight` percent of traffic to the new version, then optionally pause and analyse."""

    weight: int = Field(description="Percent of traffic for the canary.", ge=0, le=100)
    pause_seconds: int | None = Field(
        None,
        description="Wait this long at the step; 0 waits for a manual promote. Unset: no pause.",
        ge=0,
    )
    analysis: bool = Field(True, description="Run the analysis gates before leaving this step.")


def _default_canary_steps() -> list[CanaryStep]:
    return [CanaryStep(weight=10), CanaryStep(weight=50), CanaryStep(weight=100, analysis=False)]


class CanaryStrategy(ApiModel):
    """Progressive traffic shift to the new version."""

    steps: list[CanaryStep] = Field(
        default_factory=_default_canary_steps,
        description="Steps in order; weights never decrease. Default 10% -> 50% -> 100% with analysis between.",
        min_length=1,
        max_length=20,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.map(s, s.weight).isSorted()", "canary step weights must never decrease"),
            ]
        },
    )


class BlueGreenStrategy(ApiModel):
    """Run the new version beside the old one, then switch all traffic at once."""

    auto_promote: bool = Field(True, description="Switch as soon as analysis passes.")
    preview_replicas: int | None = Field(
        None, description="Replicas of the preview; the same as the active ones when unset.", ge=1
    )
    scale_down_delay_seconds: int = Field(
        30, description="Keep the old version running this long after the switch.", ge=0
    )


class PrometheusGate(ApiModel):
    """A Prometheus query whose value must stay within bounds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.min) || has(self.max)", "set min, max or both"),
                cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "min must not exceed max",
                ),
            ]
        }
    )

    name: str = Field(
        description="Gate name, shown in status.", pattern=DNS_SUBDOMAIN, max_length=63
    )
    query: str = Field(
        description="PromQL returning one number (a scalar or a one-element vector); "
        "{{version}} (the ModelVersion under analysis), {{track}} (canary or preview), "
        "{{namespace}} and {{deployment}} are substituted.",
        min_length=1,
        max_length=4096,
    )
    min: float | None = Field(None, description="Fail below this value.")
    max: float | None = Field(None, description="Fail above this value.")
    failure_limit: int = Field(
        0, description="Measurements outside bounds tolerated before the gate fails.", ge=0
    )


class BuiltinGates(ApiModel):
    """Gates that need no PromQL: the new version's success rate and p99 latency, alone and
    against the stable track over the same period. From Prometheus when one is configured,
    else from the serving pods' own /metrics."""

    min_requests: int = Field(
        50,
        description="Requests a period must hold on each track compared; fewer is no data "
        "(Inconclusive), never a pass.",
        ge=1,
        le=1000000,
    )
    min_success_rate: float | None = Field(
        0.99,
        description="Fail when fewer of the new version's requests succeed (0-1). Unset: no such gate.",
        ge=0,
        le=1,
    )
    max_success_rate_drop: float | None = Field(
        0.01,
        description="Fail when the new version's success rate is lower than stable's by more "
        "than this (0-1). Unset: no such gate.",
        ge=0,
        le=1,
    )
    max_p99_seconds: float | None = Field(
        None,
        description="Fail when the new version's p99 latency exceeds this many seconds. Unset: no such gate.",
        gt=0,
    )
    max_p99_ratio: float | None = Field(
        1.5,
        description="Fail when the new version's p99 latency exceeds stable's by more than "
        "this factor. Unset: no such gate.",
        gt=0,
    )


class DivergenceGate(ApiModel):
    """Fail when the new version predicts differently from stable on the same traffic:
    the two tracks' prediction distributions (from their drift sidecars) compared with a
    two-sample test and a minimum effect size. Needs a DriftPolicy targeting the deployment."""

    output: str | None = Field(
        None,
        description="Model output to compare; the first the sidecars report when unset.",
        max_length=253,
    )
    alpha: float = Field(0.01, description="Significance level of the two-sample test.", gt=0, lt=1)
    min_effect: float = Field(
        0.1,
        description="Smallest effect size (total variation distance, 0-1) that fails the "
        "gate; a significant but smaller difference passes.",
        ge=0,
        le=1,
    )
    min_samples: int = Field(
        200,
        description="Predictions each track must report; fewer is no data (Inconclusive).",
        ge=1,
    )
    test: Literal["chi-square", "g-test"] = Field(
        "chi-square", description="The two-sample test: chi-square or g-test."
    )


class Analysis(ApiModel):
    """The automatic gates a rollout step must pass."""

    interval_seconds: int = Field(30, description="Time between measurements.", ge=1)
    initial_delay_seconds: int = Field(
        0,
        description="How long a run waits before its first measurement's interval begins "
        "(Argo Rollouts' initialDelay): time for new pods to be scraped by Prometheus.",
        ge=0,
        le=3600,
    )
    count: int = Field(3, description="Measurements per analysis run.", ge=1, le=100)
    consecutive_error_limit: int = Field(
        4,
        description="Errors in a row (timeouts, 5xx, bad PromQL) tolerated; one more ends "
        "the run Inconclusive. Errors never count as passes.",
        ge=0,
        le=100,
    )
    prometheus_url: str | None = Field(
        None,
        description="Prometheus base URL (http or https); the operator's configured one when unset. Link-local and cloud metadata addresses are refused.",
        pattern=PROMETHEUS_URL_PATTERN,
        max_length=URI_MAX,
        json_schema_extra={"x-kubernetes-validations": PROMETHEUS_URL_RULES},
    )
    prometheus_secret_ref: SecretReference | None = Field(
        None,
        description="Secret with Prometheus credentials: key token (a bearer token, sent "
        "only over https) and/or key ca.crt (a PEM CA bundle).",
    )
    metrics: list[PrometheusGate] = Field(
        default_factory=list,
        description="Prometheus gates.",
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    builtin: BuiltinGates | None = Field(
        None, description="Built-in success-rate and latency gates; off when unset."
    )
    drift_gate: bool = Field(
        True,
        description="Fail when the new version's pods report confirmed drift of severity "
        "High in the deployment's DriftPolicy (only where a DriftPolicy targets it).",
    )
    divergence: DivergenceGate | None = Field(
        None, description="Prediction divergence gate against stable; off when unset."
    )
    background: bool = Field(
        False,
        description="Also run the gates over the whole rollout, run after run: a failed "
        "background run aborts at any step, an inconclusive one holds the rollout.",
    )


class Strategy(ApiModel):
    """How to move from one ModelVersion to the next."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type == 'BlueGreen' || !has(self.blueGreen)",
                    "blueGreen is only allowed with type BlueGreen",
                ),
                cel(
                    "self.type == 'Canary' || !has(self.canary)",
                    "canary is only allowed with type Canary",
                ),
            ]
        }
    )

    type: StrategyType = Field(StrategyType.CANARY, description="Canary, BlueGreen or Rolling.")
    canary: CanaryStrategy | None = Field(
        None, description="Canary steps; defaults apply when unset."
    )
    blue_green: BlueGreenStrategy | None = Field(None, description="Blue-green settings.")
    analysis: Analysis = Field(default_factory=Analysis, description="Gates between steps.")
    progress_deadline_seconds: int = Field(
        600,
        description="A rollout step whose new pods are not all ready this long after it "
        "began is aborted (ProgressDeadlineExceeded).",
        ge=10,
        le=86400,
    )


class HTTPRouteParent(ApiModel):
    """A Gateway the HTTPRoute attaches to."""

    name: str = Field(
        description="Gateway name.", pattern=DNS_SUBDOMAIN, max_length=DNS_SUBDOMAIN_MAX
    )
    namespace: str | None = Field(
        None,
        description="Gateway namespace; the resource's when unset.",
        pattern=DNS_LABEL,
        max_length=DNS_LABEL_MAX,
    )
    section_name: str | None = Field(
        None,
        description="Listener name on the Gateway.",
        pattern=DNS_SUBDOMAIN,
        max_length=DNS_SUBDOMAIN_MAX,
    )


class Traffic(ApiModel):
    """How traffic is split between versions."""

    http_route: list[HTTPRouteParent] | None = Field(
        None,
        alias="httpRoute",
        description="Gateway API parents: when set, an HTTPRoute splits traffic by weight; otherwise by replica ratio.",
        max_length=8,
    )
    hostnames: list[Hostname] = Field(
        default_factory=list,
        description="Hostnames for the HTTPRoute, as Gateway API takes them: DNS names, optionally *.-prefixed.",
        max_length=16,
    )


class VersionSelector(ApiModel):
    """Which ModelVersions a following deployment chooses from."""

    model: str = Field(
        description="The logical model (ModelVersion spec.model).", min_length=1, max_length=253
    )
    match_labels: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict,
        description="Labels a ModelVersion must carry to be chosen.",
        max_length=32,
    )


class ModelDeploymentSpec(ApiModel):
    """Desired state of a ModelDeployment."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.replicas) || has(self.autoscaling)",
                    "set replicas or autoscaling",
                ),
                cel(
                    "has(self.modelVersion) != has(self.versionSelector)",
                    "set exactly one of modelVersion and versionSelector",
                ),
            ]
        }
    )

    model_version: str | None = Field(
        None,
        description="Name of the ModelVersion to serve, in the same namespace. Exclusive "
        "with versionSelector.",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    version_selector: VersionSelector | None = Field(
        None,
        description="Follow a model instead of naming a version: serve the newest Ready "
        "ModelVersion of it that passed its validation gate (a retrained version rolls out "
        "by itself, through the strategy's gates). Exclusive with modelVersion.",
    )
    replicas: int | None = Field(
        None,
        description="Replicas over all tracks. With autoscaling, leave it out of your "
        "manifests: the HPA sets it through the scale subresource, and the operator splits "
        "it between the tracks of a rollout.",
        ge=0,
        le=1000,
    )
    autoscaling: Autoscaling | None = Field(
        None, description="Autoscale replicas with an HPA; exclusive with replicas."
    )
    resources: Resources = Field(default_factory=Resources, description="CPU and memory.")
    gpu: GPU | None = Field(None, description="Schedule on GPUs; CPU only when unset.")
    topology_spread: TopologySpread | None = Field(
        None, description="Spread replicas across nodes or zones."
    )
    serving: Serving = Field(default_factory=Serving, description="Model server options.")
    strategy: Strategy = Field(default_factory=Strategy, description="Rollout strategy.")
    traffic: Traffic = Field(default_factory=Traffic, description="Traffic routing.")
    revision_history_limit: int = Field(
        10, description="Past versions kept in status.history.", ge=0, le=100
    )
    paused: bool = Field(False, description="Hold the rollout where it is.")


class TrackStatus(ApiModel):
    """Replica counts of one track's Deployment."""

    version: str = Field(description="ModelVersion served by the track.")
    deployment: str = Field(description="Name of the track's Deployment.")
    replicas: int = Field(0, description="Desired replicas.", ge=0)
    ready_replicas: int = Field(0, description="Ready replicas.", ge=0)
    available_replicas: int = Field(0, description="Available replicas.", ge=0)


class GateMeasurement(ApiModel):
    """One measurement of a gate."""

    at: datetime = Field(description="When it was taken.")
    phase: Literal["Successful", "Failed", "NoData", "Error"] = Field(
        description="Successful (within bounds), Failed (outside), NoData or Error."
    )
    value: str | None = Field(
        None,
        description="The measured number as Prometheus writes it (+Inf, -Inf); unset for NoData and Error.",
        max_length=64,
    )
    message: str = Field("", description="Why it failed, had no data or errored.", max_length=1024)


class GateRun(ApiModel):
    """One gate of an analysis run: its bounds, its last measurements and totals."""

    name: str = Field(description="Gate name.", max_length=64)
    kind: Literal["Prometheus", "Builtin", "Drift", "Divergence"] = Field(
        description="Prometheus, Builtin, Drift or Divergence."
    )
    track: str = Field(description="The track measured (canary or preview).", max_length=16)
    min: float | None = Field(None, description="Lower bound.")
    max: float | None = Field(None, description="Upper bound.")
    verdict: Literal["Running", "Passed", "Failed", "Inconclusive"] = Field(
        description="Running, Passed, Failed or Inconclusive."
    )
    reason: str = Field("", description="What decided it.", max_length=1024)
    started_at: datetime = Field(description="When the run of this gate began.")
    recent: list[GateMeasurement] = Field(
        default_factory=list, description="The last measurements, oldest first.", max_length=10
    )
    successful: int = Field(0, description="Measurements within bounds.", ge=0)
    failed: int = Field(0, description="Measurements outside bounds.", ge=0)
    no_data: int = Field(0, description="Measurements with no data.", ge=0)
    errors: int = Field(0, description="Measurements that could not be taken.", ge=0)
    consecutive_errors: int = Field(0, description="Errors in a row, up to now.", ge=0)
    last_failed: GateMeasurement | None = Field(None, description="The latest failure.")
    last_no_data: GateMeasurement | None = Field(None, description="The latest no-data.")
    last_error: GateMeasurement | None = Field(None, description="The latest error.")


class AnalysisRun(ApiModel):
    """The gates run for one step (step-N), blue-green gate (pre-promotion,
    post-promotion) or the background analysis of the rollout in progress."""

    name: str = Field(
        description="step-N, pre-promotion, post-promotion or background.", max_length=64
    )
    version: str = Field(description="The ModelVersion under analysis.")
    started_at: datetime = Field(description="When the run began.")
    verdict: Literal["Running", "Passed", "Failed", "Inconclusive"] = Field(
        description="The run's verdict: Failed if any gate failed, else Inconclusive if "
        "any was, else Running until all passed."
    )
    reason: str = Field("", description="The gate and the value that decided.", max_length=1024)
    gates: list[GateRun] = Field(default_factory=list, description="Its gates.", max_length=24)


class StepVerdict(ApiModel):
    """The verdict of one gate run of the current rollout, which the rollout engine reads."""

    gate: str = Field(
        description="step-N for canary step N, pre-promotion or post-promotion for blue-green.",
        max_length=64,
    )
    version: str = Field(description="The ModelVersion under rollout it was measured for.")
    verdict: Literal["Running", "Passed", "Failed", "Inconclusive"] = Field(
        description="Running, Passed, Failed or Inconclusive."
    )
    reason: str | None = Field(None, description="What decided it.", max_length=1024)
    at: datetime = Field(description="When it was reached.")


class Revision(ApiModel):
    """A version the deployment served or tried."""

    version: str = Field(description="ModelVersion name.")
    outcome: Literal["Promoted", "Aborted", "RolledBack", "Superseded"] = Field(
        description="How the revision ended."
    )
    reason: str | None = Field(None, description="Why.")
    at: datetime = Field(description="When.")


class DriftSummary(ApiModel):
    """The DriftPolicy's verdict on this deployment, mirrored here."""

    policy: str = Field(description="The DriftPolicy.")
    drifted: bool = Field(description="Whether confirmed drift holds now.")
    severity: str = Field("None", description="None, Low, Medium or High.")
    features: list[str] = Field(
        default_factory=list, description="The drifted features.", max_length=64
    )
    message: str | None = Field(
        None, description="The Drifted condition's message.", max_length=1024
    )
    since: datetime | None = Field(None, description="When the verdict last changed.")


class ModelDeploymentStatus(ApiModel):
    """Observed state of a ModelDeployment, written by the operator."""

    phase: DeploymentPhase | None = Field(
        None, description="Progressing, Paused, Healthy or Degraded."
    )
    observed_generation: int | None = Field(None, description="Generation last acted on.")
    stable_version: str | None = Field(None, description="ModelVersion serving stable traffic.")
    canary_version: str | None = Field(None, description="ModelVersion under rollout.")
    canary_weight: int = Field(0, description="Percent of traffic on the canary.", ge=0, le=100)
    current_step: int | None = Field(
        None, description="Index of the canary step in progress.", ge=0
    )
    step_started_at: datetime | None = Field(None, description="When the current step began.")
    aborted_version: str | None = Field(
        None, description="Version whose rollout was aborted; spec is left as the user wrote it."
    )
    preview_version: str | None = Field(
        None, description="Blue-green: the new version running beside the active one."
    )
    active_track: str | None = Field(
        None, description="Blue-green: the track the Service sends traffic to (stable or preview)."
    )
    previous_version: str | None = Field(
        None, description="Blue-green: the old version kept running after the switch."
    )
    rollout_started_at: datetime | None = Field(
        None, description="When the rollout in progress began."
    )
    switched_at: datetime | None = Field(
        None, description="Blue-green: when traffic was switched to the new version."
    )
    paused_by_request: bool = Field(
        False, description="Paused by `driftline rollout pause` (spec.paused is the user's own)."
    )
    handled_request: str | None = Field(
        None,
        description="Id of the last manual request (driftline.io/rollout-request) acted on; "
        "each request is acted on once.",
        max_length=128,
    )
    rolled_back_version: str | None = Field(
        None,
        description="A version whose drift rolled traffic back; holds while spec names it.",
    )
    rolled_back_to: str | None = Field(
        None, description="The version serving instead of rolledBackVersion."
    )
    rollback_handled_at: datetime | None = Field(
        None, description="The time of the last DriftPolicy rollback request acted on."
    )
    drift: DriftSummary | None = Field(
        None, description="The DriftPolicy's verdict on this deployment."
    )
    selected_version: str | None = Field(
        None, description="With versionSelector: the ModelVersion it chose."
    )
    verdicts: list[StepVerdict] = Field(
        default_factory=list,
        description="Gate verdicts of the rollout in progress.",
        max_length=64,
    )
    gpus: dict[str, int] = Field(
        default_factory=dict, description="GPUs (or MIG slices) requested per track."
    )
    replicas: int = Field(
        0, description="Ready replicas over all tracks (scale subresource).", ge=0
    )
    selector: str | None = Field(
        None, description="Label selector of the pods (scale subresource)."
    )
    tracks: dict[str, TrackStatus] = Field(
        default_factory=dict, description="Per track (stable, canary, preview): its Deployment."
    )
    analysis: list[AnalysisRun] = Field(
        default_factory=list,
        description="Analysis runs of the rollout in progress (the current one in full; "
        "finished ones stay until the rollout ends).",
        max_length=32,
    )
    history: list[Revision] = Field(
        default_factory=list, description="Past revisions, newest first.", max_length=100
    )
    url: str | None = Field(None, description="In-cluster URL of the inference endpoint.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description=CONDITIONS_FIELD_DESCRIPTION,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ModelDeployment(ResourceModel):
    """Serves a ModelVersion and rolls new versions out by canary or blue-green."""

    kind_name: ClassVar[str] = "ModelDeployment"
    plural: ClassVar[str] = "modeldeployments"
    short_names: ClassVar[tuple[str, ...]] = ("mdep",)
    printer_columns: ClassVar[tuple[dict[str, str], ...]] = (
        {"name": "Version", "type": "string", "jsonPath": ".spec.modelVersion"},
        {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
        {"name": "Canary", "type": "string", "jsonPath": ".status.canaryVersion"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
        {"name": "Step", "type": "integer", "jsonPath": ".status.currentStep"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )
    scale: ClassVar[dict[str, str] | None] = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }

    kind: Literal["ModelDeployment"] = Field("ModelDeployment", description="ModelDeployment.")
    spec: ModelDeploymentSpec = Field(description="What to serve and how to change it.")
    status: ModelDeploymentStatus | None = Field(None, description="Written by the operator.")
