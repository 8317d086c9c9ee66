"""The drift sidecar's ServiceAccount, Role and RoleBinding: least privilege.

The sidecar may read and watch its own DriftPolicy and patch only that policy's status;
nothing else in the namespace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftline.api.common import GROUP
from driftline.render import labels as lbl


def _evaluator_labels(deployment_name: str, model_name: str) -> dict[str, str]:
    return lbl.standard_labels(
        name=model_name, instance=deployment_name, component=lbl.COMPONENT_EVALUATOR
    )


def render_service_account(owner: Mapping[str, Any], *, model_name: str) -> dict[str, Any]:
    deployment_name = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": lbl.object_metadata(
            lbl.evaluator_account_name(deployment_name),
            owner,
            _evaluator_labels(deployment_name, model_name),
        ),
        "automountServiceAccountToken": False,
    }


def render_role(owner: Mapping[str, Any], *, policy_name: str, model_name: str) -> dict[str, Any]:
    deployment_name = owner["metadata"]["name"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": lbl.object_metadata(
            lbl.evaluator_account_name(deployment_name),
            owner,
            _evaluator_labels(deployment_name, model_name),
        ),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["driftpolicies"],
                "resourceNames": [policy_name],
                "verbs": ["get", "watch"],
            },
            {
                "apiGroups": [GROUP],
                "resources": ["driftpolicies/status"],
                "resourceNames": [policy_name],
                "verbs": ["patch"],
            },
        ],
    }


def render_role_binding(owner: Mapping[str, Any], *, model_name: str) -> dict[str, Any]:
    deployment_name = owner["metadata"]["name"]
    name = lbl.evaluator_account_name(deployment_name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": lbl.object_metadata(
            name, owner, _evaluator_labels(deployment_name, model_name)
        ),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": name,
                "namespace": owner["metadata"]["namespace"],
            }
        ],
    }
