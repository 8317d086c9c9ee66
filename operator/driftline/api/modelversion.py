"""ModelVersion: one immutable, verified ONNX model artifact."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints

from driftline.api.common import (
    CONDITIONS_FIELD_DESCRIPTION,
    DESCRIPTION_MAX,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    DNS_SUBDOMAIN_MAX,
    URI_MAX,
    ApiModel,
    Condition,
    ResourceModel,
    SecretReference,
    cel,
)
from driftline.vocabulary import FeatureType

SHA256_RULE = cel(
    "self.matches('^[0-9a-f]{64}$')",
    "must be a sha256 digest: 64 lowercase hexadecimal characters",
)
# What driftline_serving.artifacts can fetch inside a Pod. A path or file:// URI names a
# file on a volume, and the rendered Pods mount no volume of the user's, so such a
# ModelVersion could never become Ready: it is refused here, with the reason.
ARTIFACT_URI_PATTERN = r"^(s3|https?)://\S+$"
ARTIFACT_URI_RULE = cel(
    "self.matches('^(s3|https?)://')",
    "must be an s3://, https:// or http:// URI: the serving Pods mount no volume, so a "
    "path or file:// URI could never be read",
)
METRIC_NAME_MAX = 256
MetricName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=METRIC_NAME_MAX),
    Field(description=f"a metric name of at most {METRIC_NAME_MAX} characters"),
]


class ModelVersionPhase(StrEnum):
    PENDING = "Pending"
    VERIFYING = "Verifying"
    READY = "Ready"
    FAILED = "Failed"
    DEPRECATED = "Deprecated"
    RETIRED = "Retired"


class Artifact(ApiModel):
    """Where the model file lives and the digest it must have."""

    uri: str = Field(
        description="s3://bucket/key, https:// or http:// URI of the model file.",
        pattern=ARTIFACT_URI_PATTERN,
        max_length=URI_MAX,
        json_schema_extra={"x-kubernetes-validations": [ARTIFACT_URI_RULE]},
    )
    sha256: str = Field(
        description="Expected sha256 of the file; a file with any other digest is never served.",
        max_length=64,
        json_schema_extra={"x-kubernetes-validations": [SHA256_RULE]},
    )
    secret_ref: SecretReference | None = Field(
        None, description="Secret with credentials for the artifact's store (S3 keys, HTTP token)."
    )


class TensorSpec(ApiModel):
    """One input or output tensor of the model."""

    name: str = Field(description="Tensor name in the ONNX graph.", min_length=1, max_length=256)
    datatype: Literal[
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    ] = Field(description="Open Inference Protocol datatype.")
    shape: list[int] = Field(
        description="Dimensions; -1 marks a dynamic dimension such as the batch.", max_length=16
    )


class Signature(ApiModel):
    """The model's inputs and outputs."""

    inputs: list[TensorSpec] = Field(description="Input tensors.", min_length=1, max_length=64)
    outputs: list[TensorSpec] = Field(description="Output tensors.", min_length=1, max_length=64)


class Feature(ApiModel):
    """One input feature as the drift engine sees it."""

    name: str = Field(description="Feature name.", min_length=1, max_length=256)
    type: FeatureType = Field(description="numeric or categorical: selects the drift tests.")
    description: str | None = Field(
        None, description="What the feature means.", max_length=DESCRIPTION_MAX
    )


class ReferenceProfile(ApiModel):
    """The reference profile of the training data, built by `driftline profile`."""

    uri: str = Field(
        description="Where the profile file lives (same schemes as the artifact).",
        pattern=ARTIFACT_URI_PATTERN,
        max_length=URI_MAX,
        json_schema_extra={"x-kubernetes-validations": [ARTIFACT_URI_RULE]},
    )
    sha256: str = Field(
        description="sha256 of the profile file, printed by `driftline profile`.",
        max_length=64,
        json_schema_extra={"x-kubernetes-validations": [SHA256_RULE]},
    )
    secret_ref: SecretReference | None = Field(
        None, description="Secret with credentials for the profile's store."
    )


class Lineage(ApiModel):
    """Where this version came from."""

    parent: str | None = Field(
        None,
        description="Name of the ModelVersion this one was retrained from.",
        pattern=DNS_SUBDOMAIN,
        max_length=DNS_SUBDOMAIN_MAX,
    )
    training_job: str | None = Field(
        None,
        description="Name of the Job that produced it.",
        pattern=DNS_SUBDOMAIN,
        max_length=DNS_SUBDOMAIN_MAX,
    )
    dataset: str | None = Field(
        None, description="Identifier or URI of the training data set.", max_length=URI_MAX
    )
    drift_policy: str | None = Field(
        None,
        description="Name of the DriftPolicy whose retraining produced this version.",
        pattern=DNS_SUBDOMAIN,
        max_length=DNS_SUBDOMAIN_MAX,
    )
    drift_report: str | None = Field(
        None,
        description="The drift that triggered the retraining: severity, drifted features and when.",
        max_length=1024,
    )


class ModelVersionSpec(ApiModel):
    """Desired state of a ModelVersion. Immutable: a new model is a new ModelVersion."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self == oldSelf", "spec is immutable; create a new ModelVersion instead"),
            ]
        }
    )

    model: str = Field(
        description="Logical model name shared by all versions of one model.",
        pattern=DNS_LABEL,
        max_length=63,
    )
    version: str = Field(
        description="Version label, for example 1.4.0 or 2026-11-23.",
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$",
        max_length=63,
    )
    format: Literal["onnx"] = Field("onnx", description="Artifact format; only onnx for now.")
    artifact: Artifact = Field(description="The model file and its digest.")
    signature: Signature | None = Field(
        None,
        description="Declared inputs and outputs; when set, verification fails if the graph differs.",
    )
    features: list[Feature] = Field(
        default_factory=list,
        description="Input features in column order, for drift detection; names are unique.",
        max_length=1000,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    reference: ReferenceProfile | None = Field(
        None, description="Reference profile of the training data; required for drift detection."
    )
    metrics: dict[MetricName, float] = Field(
        default_factory=dict,
        description="Offline evaluation metrics, for example accuracy or auc.",
        max_length=64,
    )
    lineage: Lineage | None = Field(None, description="Provenance of this version.")


class ModelVersionStatus(ApiModel):
    """Observed state of a ModelVersion, written by the operator."""

    phase: ModelVersionPhase = Field(
        ModelVersionPhase.PENDING,
        description="Pending, Verifying, Ready, Failed, Deprecated or Retired.",
    )
    observed_generation: int | None = Field(None, description="Generation last acted on.")
    digest: str | None = Field(None, description="Verified sha256 of the artifact.")
    size_bytes: int | None = Field(
        None, description="Verified size of the artifact in bytes.", ge=0
    )
    signature: Signature | None = Field(None, description="Signature read from the ONNX graph.")
    verification_job: str | None = Field(None, description="Name of the verification Job.")
    verified_at: datetime | None = Field(None, description="When verification succeeded.")
    used_by: list[str] = Field(
        default_factory=list,
        description="ModelDeployments that serve this version; it cannot be deleted while in use.",
        max_length=1024,
    )
    message: str | None = Field(None, description="Human-readable summary of the phase.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description=CONDITIONS_FIELD_DESCRIPTION,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class ModelVersion(ResourceModel):
    """An immutable, checksummed ONNX model artifact with its feature schema and reference profile."""

    kind_name: ClassVar[str] = "ModelVersion"
    plural: ClassVar[str] = "modelversions"
    short_names: ClassVar[tuple[str, ...]] = ("mv",)
    printer_columns: ClassVar[tuple[dict[str, str], ...]] = (
        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    kind: Literal["ModelVersion"] = Field("ModelVersion", description="ModelVersion.")
    spec: ModelVersionSpec = Field(description="The artifact and what it expects.")
    status: ModelVersionStatus | None = Field(None, description="Written by the operator.")
