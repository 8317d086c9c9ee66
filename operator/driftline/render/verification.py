"""The short-lived Job that verifies a ModelVersion's artifact inside the cluster.

The operator never downloads artifacts nor holds storage credentials: the Job fetches the
artifact with the ModelVersion's own Secret, checks its sha256, reads the ONNX signature,
and reports a compact JSON result through its termination message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from driftline.api.modelversion import ModelVersion
from driftline.render import labels as lbl
from driftline.render.security import (
    ARTIFACT_DIR,
    container_security_context,
    pod_security_context,
    scratch_mounts,
    scratch_volumes,
    secret_env_from,
)
from driftline.render.settings import RenderSettings

VERIFY_CONTAINER = "verify"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def render_verification_job(
    owner: Mapping[str, Any], model_version: ModelVersion, settings: RenderSettings
) -> dict[str, Any]:
    mv = model_version.spec
    env = [
        {"name": "DRIFTLINE_MODEL_URI", "value": mv.artifact.uri},
        {"name": "DRIFTLINE_SHA256", "value": mv.artifact.sha256},
        {"name": "DRIFTLINE_ARTIFACT_DIR", "value": ARTIFACT_DIR},
        {"name": "DRIFTLINE_TERMINATION_LOG", "value": TERMINATION_MESSAGE_PATH},
    ]
    if mv.signature is not None:
        env.append(
            {
                "name": "DRIFTLINE_SIGNATURE",
                "value": json.dumps(mv.signature.wire(), separators=(",", ":"), sort_keys=True),
            }
        )
    container: dict[str, Any] = {
        "name": VERIFY_CONTAINER,
        "image": settings.serving_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["driftline-verify"],
        "env": env,
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": settings.verify_memory_limit},
        },
        "securityContext": container_security_context(),
        "volumeMounts": scratch_mounts(),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    secret = mv.artifact.secret_ref
    env_from = secret_env_from(secret.name if secret else None)
    if env_from:
        container["envFrom"] = env_from
    name = owner["metadata"]["name"]
    labels = lbl.standard_labels(
        name=mv.model, instance=name, component=lbl.COMPONENT_VERIFICATION, version=mv.version
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": lbl.object_metadata(lbl.verification_job_name(name), owner, labels),
        "spec": {
            # A wrong digest or signature does not get better on retry; a network blip might.
            "backoffLimit": 2,
            "activeDeadlineSeconds": settings.verify_deadline_seconds,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": scratch_volumes(),
                },
            },
        },
    }
