"""Building blocks shared by the three resources."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "driftline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CAMEL_CASE_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

# Length limits no real user meets; they keep a hostile object (a 1 MB string) out of etcd,
# out of the operator's memory and out of every Pod spec rendered from it.
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
URI_MAX = 2048
DESCRIPTION_MAX = 1024
IMAGE_MAX = 1024

# Kubernetes' qualified name (label and annotation keys, resource names, topology keys): an
# optional DNS-subdomain prefix and '/', then a name of at most 63 characters. RE2 and
# Rust's regex have no look-ahead, so the prefix's own 253 limit is the total's 317.
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QUALIFIED_NAME_MAX = DNS_SUBDOMAIN_MAX + 1 + DNS_LABEL_MAX
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A Kubernetes resource quantity (500m, 1.5Gi, 2e3), never negative: a negative request or
# limit is refused by the API server only when the Pod is created, long after admission.
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
QUANTITY_MAX = 64
# Gateway API's Hostname: a DNS name, optionally with one leading wildcard label; never a
# bare '*', an IP address or anything outside ASCII.
HOSTNAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

QualifiedName = Annotated[
    str,
    StringConstraints(pattern=QUALIFIED_NAME, max_length=QUALIFIED_NAME_MAX),
    Field(
        description="a qualified name: an optional DNS subdomain and '/', then at most 63 "
        "letters, digits, '-', '_' or '.', starting and ending with a letter or digit "
        "(for example nvidia.com/gpu)"
    ),
]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE, max_length=DNS_LABEL_MAX)]
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY, max_length=QUANTITY_MAX)]


def cel_string(text: str) -> str:
    """`text` as a CEL string literal (single-quoted), for patterns inside rules."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
        max_length=DNS_SUBDOMAIN_MAX,
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

    key: str | None = Field(
        None,
        description="Taint key the toleration applies to (a qualified name).",
        pattern=QUALIFIED_NAME,
        max_length=QUALIFIED_NAME_MAX,
    )
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(
        None,
        description="Taint value for operator Equal (a label value).",
        pattern=LABEL_VALUE,
        max_length=DNS_LABEL_MAX,
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


CONDITIONS_FIELD_DESCRIPTION = (
    "Observations of the resource's state, per the Kubernetes API conventions."
)
