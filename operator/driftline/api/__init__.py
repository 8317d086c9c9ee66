"""The three custom resources as pydantic models: the one source of `crds/`.

The CRDs' OpenAPI schemas, defaults and CEL rules are generated from these models by
`driftline.api.crdgen`; handlers parse objects read from the cluster with them.
"""

from driftline.api.common import GROUP, VERSION, Condition
from driftline.api.driftpolicy import DriftPolicy, DriftPolicySpec, DriftPolicyStatus
from driftline.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from driftline.api.modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus

RESOURCES = (ModelVersion, ModelDeployment, DriftPolicy)

__all__ = [
    "GROUP",
    "RESOURCES",
    "VERSION",
    "Condition",
    "DriftPolicy",
    "DriftPolicySpec",
    "DriftPolicyStatus",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
]
