"""A DriftPolicy's retraining Job, and the ModelVersion made from its result.

The Job is the user's `spec.retraining.jobTemplate`, kept as written (the CRD has already
refused what is unsafe in it), with what the contract in `driftline.api.retraining` adds:
the DRIFTLINE_* environment in every container, the context file projected by a
downward-API volume from an annotation of the Pod, the policy's deadline, our labels and
the policy as its owner. Names are deterministic per trigger, so a second reconcile, a
second replica or a restarted operator finds the same Job rather than making another.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from driftline.api import retraining as contract
from driftline.api.driftpolicy import DriftPolicy, RetrainingRun
from driftline.api.modelversion import ModelVersion
from driftline.render import labels as lbl
from driftline.vocabulary import Severity

COMPONENT_RETRAINING: Final = "retraining"
POLICY_LABEL: Final = "driftline.io/drift-policy"
TRIGGER_LABEL: Final = "driftline.io/retraining-trigger"
VALIDATION_LABEL: Final = "driftline.io/validation"  # passed | rejected
VALIDATION_ANNOTATION: Final = "driftline.io/validation-message"
PROMOTION_LABEL: Final = "driftline.io/promotion"  # manual: a following rollout waits
CONTEXT_VOLUME: Final = "driftline-retraining-context"


def job_name(policy_name: str, number: int) -> str:
    return lbl.child_name(policy_name, f"retrain-{number}")


def model_version_name(policy_name: str, number: int) -> str:
    return lbl.child_name(policy_name, f"retrained-{number}")


def output_uri(policy: DriftPolicy, job: str) -> str | None:
    base = policy.spec.retraining.output_uri if policy.spec.retraining else None
    if not base:
        return None
    return f"{base.rstrip('/')}/{job}/"


def job_environment(
    policy: DriftPolicy, run: RetrainingRun, parent: ModelVersion
) -> dict[str, str]:
    """What the Job is told, by name (docs/drift-actions.md)."""
    spec = parent.spec
    env = {
        contract.ENV_MODEL: spec.model,
        contract.ENV_NAMESPACE: policy.metadata["namespace"],
        contract.ENV_SERVING_VERSION: run.parent,
        contract.ENV_SERVING_ARTIFACT_URI: spec.artifact.uri,
        contract.ENV_SERVING_ARTIFACT_SHA256: spec.artifact.sha256,
        contract.ENV_DRIFT_POLICY: policy.metadata["name"],
        contract.ENV_TRIGGER: run.trigger,
        contract.ENV_CONTEXT_FILE: contract.CONTEXT_FILE,
        contract.ENV_TERMINATION_LOG: contract.TERMINATION_MESSAGE_PATH,
    }
    if spec.reference is not None:
        env[contract.ENV_REFERENCE_URI] = spec.reference.uri
        env[contract.ENV_REFERENCE_SHA256] = spec.reference.sha256
    destination = output_uri(policy, run.job)
    if destination is not None:
        env[contract.ENV_OUTPUT_URI] = destination
    return env


def context_document(
    policy: DriftPolicy, run: RetrainingRun, parent: ModelVersion
) -> dict[str, Any]:
    """The context file: the environment, and the drift behind the trigger."""
    return {
        "environment": job_environment(policy, run, parent),
        "drift": {
            "severity": Severity(run.severity).value,
            "features": list(run.features),
            "triggeredAt": run.triggered_at.isoformat(),
            "message": run.message or "",
        },
        "features": [f.wire() for f in parent.spec.features],
        "metrics": dict(parent.spec.metrics),
    }


def _labels(policy: DriftPolicy, run: RetrainingRun, model: str) -> dict[str, str]:
    labels = lbl.standard_labels(
        name=model, instance=policy.metadata["name"], component=COMPONENT_RETRAINING
    )
    labels[POLICY_LABEL] = lbl.label_value(policy.metadata["name"])
    labels[TRIGGER_LABEL] = lbl.label_value(run.trigger)
    return labels


def render_retraining_job(
    owner: Mapping[str, Any], policy: DriftPolicy, run: RetrainingRun, parent: ModelVersion
) -> dict[str, Any]:
    retraining = policy.spec.retraining
    assert retraining is not None
    spec = copy.deepcopy(retraining.job_template)
    spec["activeDeadlineSeconds"] = min(
        int(spec.get("activeDeadlineSeconds") or retraining.active_deadline_seconds),
        retraining.active_deadline_seconds,
    )
    labels = _labels(policy, run, parent.spec.model)
    template = spec.setdefault("template", {})
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        contract.CONTEXT_ANNOTATION: json.dumps(
            context_document(policy, run, parent), separators=(",", ":"), sort_keys=True
        ),
    }
    pod = template.setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    pod["volumes"] = [
        *(v for v in pod.get("volumes") or [] if v.get("name") != CONTEXT_VOLUME),
        {
            "name": CONTEXT_VOLUME,
            "downwardAPI": {
                "items": [
                    {
                        "path": contract.CONTEXT_FILE.rsplit("/", 1)[1],
                        "fieldRef": {
                            "fieldPath": f"metadata.annotations['{contract.CONTEXT_ANNOTATION}']"
                        },
                    }
                ]
            },
        },
    ]
    environment = job_environment(policy, run, parent)
    for container in pod.get("containers") or []:
        ours = set(environment)
        container["env"] = [
            *(e for e in container.get("env") or [] if e.get("name") not in ours),
            *({"name": k, "value": v} for k, v in sorted(environment.items())),
        ]
        container["volumeMounts"] = [
            *(m for m in container.get("volumeMounts") or [] if m.get("name") != CONTEXT_VOLUME),
            {"name": CONTEXT_VOLUME, "mountPath": contract.CONTEXT_DIRECTORY, "readOnly": True},
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": lbl.object_metadata(run.job, owner, labels),
        "spec": spec,
    }


def render_retrained_version(
    policy: DriftPolicy,
    run: RetrainingRun,
    parent: ModelVersion,
    result: contract.RetrainingResult,
    *,
    rejected_because: str | None,
) -> dict[str, Any]:
    """The new ModelVersion, with its lineage; verified like any other. No owner: it may
    serve long after the policy is gone."""
    spec = parent.spec
    artifact = result.artifact.wire()
    if spec.artifact.secret_ref is not None and "secretRef" not in artifact:
        artifact["secretRef"] = spec.artifact.secret_ref.wire()
    labels = {
        lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY,
        POLICY_LABEL: lbl.label_value(policy.metadata["name"]),
        TRIGGER_LABEL: lbl.label_value(run.trigger),
        VALIDATION_LABEL: "rejected" if rejected_because else "passed",
    }
    if policy.spec.retraining is not None and policy.spec.retraining.promotion == "Manual":
        labels[PROMOTION_LABEL] = "manual"
    annotations = {VALIDATION_ANNOTATION: rejected_because or "passed the validation gate"}
    drift = f"severity {Severity(run.severity).value}; features {', '.join(run.features) or 'outputs only'}; at {run.triggered_at.isoformat()}"
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "name": run.model_version,
            "namespace": policy.metadata["namespace"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "model": spec.model,
            "version": result.version or f"{spec.version}-r{run.job.rsplit('-', 1)[-1]}",
            "format": spec.format,
            "artifact": artifact,
            "features": [f.wire() for f in spec.features],
            "reference": result.reference.wire(),
            "metrics": dict(result.metrics),
            "lineage": {
                "parent": run.parent,
                "trainingJob": run.job,
                "driftPolicy": policy.metadata["name"],
                "driftReport": drift[:1024],
            },
        },
    }
