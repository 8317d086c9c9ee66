"""The contract between the operator and a retraining Job (issue 16; docs/drift-actions.md).

What the Job is told:
- environment variables, `DRIFTLINE_*` below, added to every container of the Job;
- the same and the drift report's summary as one JSON file, `CONTEXT_FILE`, projected from
  an annotation of the Job's Pod (`CONTEXT_ANNOTATION`) by a downward-API volume, so no
  other object (and no other grant) is needed.

What it answers: its container writes one JSON document (`RetrainingResult`) to its
termination message file (`TERMINATION_MESSAGE_PATH`, Kubernetes' default), naming the new
artifact and reference profile with their sha256 and its offline metrics. The operator
creates a ModelVersion from it, with lineage; a missing or malformed message is a failed
retraining, never a half-made ModelVersion.
"""

from __future__ import annotations

import json
from typing import Final

from pydantic import Field, ValidationError

from driftline.api.common import ApiModel
from driftline.api.modelversion import Artifact, ReferenceProfile

TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT: Final = 4096
CONTEXT_DIRECTORY: Final = "/var/run/driftline/retraining"
CONTEXT_FILE: Final = f"{CONTEXT_DIRECTORY}/context.json"
CONTEXT_ANNOTATION: Final = "driftline.io/retraining-context"

# The environment every container of a retraining Job gets.
ENV_MODEL: Final = "DRIFTLINE_MODEL"  # the logical model name (ModelVersion spec.model)
ENV_NAMESPACE: Final = "DRIFTLINE_NAMESPACE"
ENV_SERVING_VERSION: Final = "DRIFTLINE_SERVING_VERSION"  # the ModelVersion that drifted
ENV_SERVING_ARTIFACT_URI: Final = "DRIFTLINE_SERVING_ARTIFACT_URI"
ENV_SERVING_ARTIFACT_SHA256: Final = "DRIFTLINE_SERVING_ARTIFACT_SHA256"
ENV_REFERENCE_URI: Final = "DRIFTLINE_REFERENCE_URI"  # its reference profile
ENV_REFERENCE_SHA256: Final = "DRIFTLINE_REFERENCE_SHA256"
ENV_DRIFT_POLICY: Final = "DRIFTLINE_DRIFT_POLICY"
ENV_TRIGGER: Final = "DRIFTLINE_TRIGGER"  # the trigger's id (one Job per trigger)
ENV_OUTPUT_URI: Final = "DRIFTLINE_OUTPUT_URI"  # where to write the new artifact and profile
ENV_CONTEXT_FILE: Final = "DRIFTLINE_CONTEXT_FILE"
ENV_TERMINATION_LOG: Final = "DRIFTLINE_TERMINATION_LOG"


class RetrainingResult(ApiModel):
    """What a retraining Job reports in its termination message."""

    artifact: Artifact = Field(description="The new ONNX artifact: uri and sha256.")
    reference: ReferenceProfile = Field(
        description="The reference profile of the data it was trained on: uri and sha256."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Offline metrics on held-out data, for example accuracy.",
        max_length=32,
    )
    version: str | None = Field(
        None,
        description="A version label for the new ModelVersion; the trigger's when unset.",
        max_length=63,
    )


class MalformedResult(ValueError):
    """The termination message is missing or is not a RetrainingResult; says why."""


def parse_result(message: str | None) -> RetrainingResult:
    """The Job's result from its termination message; MalformedResult naming the problem."""
    if message is None or not message.strip():
        raise MalformedResult(
            f"the Job wrote no termination message (expected a JSON result in "
            f"{TERMINATION_MESSAGE_PATH})"
        )
    try:
        document = json.loads(message)
    except ValueError as error:
        raise MalformedResult(
            f"the termination message is not JSON ({error}): {message[:200]!r}"
        ) from None
    if not isinstance(document, dict):
        raise MalformedResult(f"the termination message is not a JSON object: {message[:200]!r}")
    try:
        return RetrainingResult.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'result'}: {e['msg']}" for e in error.errors()
        )
        raise MalformedResult(
            f"the termination message is not a valid result: {problems}"
        ) from None
