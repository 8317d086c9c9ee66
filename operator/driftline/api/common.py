"""Building blocks shared by the three resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "driftline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CAMEL_CASE_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


def cel(rule: str, message: str, *, field_path: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry.

    Rules are declared next to the model they constrain and travel into the CRD
    unchanged; both the real API server and our local one evaluate them.
    """
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it is written to the API: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResourceModel(ApiModel):
    """A whole custom object: apiVersion, kind, metadata, spec, status."""

    kind_name: ClassVar[str]
    plural: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = ()
    scale: ClassVar[dict[str, str] | None] = None

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["driftline.io/v1alpha1"] = Field(
        "driftline.io/v1alpha1", alias="apiVersion", description="Always driftline.io/v1alpha1."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Standard Kubernetes object metadata."
    )


class SecretReference(ApiModel):
    """A Secret in the resource's namespace holding credentials."""

    name: str = Field(
        description="Name of the Secret. Credentials are read only from Secrets, never from the spec.",
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )


class Condition(ApiModel):
    """A status condition following the Kubernetes API conventions."""

    type: str = Field(
        description="Condition type in CamelCase, for example Ready or Drifted.",
        pattern=CAMEL_CASE_REASON,
        max_length=316,
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition.",
        pattern=CAMEL_CASE_REASON,
        max_length=1024,
    )
    message: str = Field("", description="Human-readable detail.", max_length=32768)
    last_transition_time: datetime = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        None, description="The metadata.generation this condition was computed from.", ge=0
    )


class Toleration(ApiModel):
    """A Kubernetes toleration (subset of core/v1 Toleration)."""

    key: str | None = Field(None, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


CONDITIONS_FIELD_DESCRIPTION = (
    "Observations of the resource's state, per the Kubernetes API conventions."
)
