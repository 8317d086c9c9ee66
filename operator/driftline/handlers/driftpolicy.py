"""DriftPolicy handlers: adding or removing a policy adds or removes the sidecar; reports
of serving pods that are gone are pruned from the policy's status."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import kopf

from driftline.api.common import API_VERSION, GROUP, VERSION
from driftline.conditions import now_rfc3339
from driftline.driftstatus import prune_gone_pods
from driftline.handlers.kube import KubeError
from driftline.handlers.metrics import measured
from driftline.handlers.modeldeployment import reconcile_model_deployment
from driftline.handlers.runtime import current, kopf_error, plain
from driftline.render.labels import selector_string, server_selector

KIND = "DriftPolicy"


def _target(spec: Mapping[str, Any] | None) -> str | None:
    return ((spec or {}).get("targetRef") or {}).get("name")


def _reconcile_target(
    namespace: str,
    target: str | None,
    index_views: Mapping[str, Any],
    retry: int,
    *,
    policy: Mapping[str, Any] | None = None,
    excluded: str | None = None,
) -> None:
    if not target:
        return
    try:
        deployment = current().kube.get(API_VERSION, "ModelDeployment", namespace, target)
    except KubeError as error:
        raise kopf_error(error, retry) from None
    if deployment is None:
        return  # The policy waits; the deployment's create handler will find it.
    reconcile_model_deployment(
        deployment, index_views, retry=retry, policy_override=policy, excluded_policy=excluded
    )


@kopf.on.resume(GROUP, VERSION, "driftpolicies")
@kopf.on.create(GROUP, VERSION, "driftpolicies")
@kopf.on.update(GROUP, VERSION, "driftpolicies")
def drift_policy_changed(
    body: kopf.Body,
    namespace: str | None,
    retry: int,
    old: Any = None,
    **kwargs: Any,
) -> None:
    if namespace is None:
        return
    with measured(KIND):
        policy = plain(body)
        new_target = _target(policy.get("spec"))
        old_target = _target((old or {}).get("spec"))
        if old_target and old_target != new_target:
            _reconcile_target(
                namespace, old_target, kwargs, retry, excluded=policy["metadata"]["name"]
            )
        _reconcile_target(namespace, new_target, kwargs, retry, policy=policy)


@kopf.on.event(GROUP, VERSION, "driftpolicies")
def drift_policy_deleted(body: kopf.Body, type: str | None, **kwargs: Any) -> None:
    """No finalizer on policies: the sidecar goes when the deletion is seen."""
    if type != "DELETED":
        return
    with measured(KIND):
        metadata = body["metadata"]
        _reconcile_target(
            metadata["namespace"],
            _target(body.get("spec")),
            kwargs,
            0,
            excluded=metadata["name"],
        )


# How often reports of gone pods are looked for; the tests shorten it.
PRUNE_INTERVAL_S = float(os.environ.get("DRIFTLINE_DRIFT_PRUNE_SECONDS", "30"))


@kopf.timer(
    GROUP, VERSION, "driftpolicies", interval=PRUNE_INTERVAL_S, initial_delay=PRUNE_INTERVAL_S
)
def prune_reports_of_gone_pods(
    body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
) -> None:
    """Drop `status.pods` entries whose pod no longer exists (scaled down, rescheduled),
    so that an old verdict of a gone pod never keeps the policy drifted."""
    status = plain(body.get("status") or {})
    if namespace is None or name is None or not status.get("pods"):
        return  # nothing reported: no API call
    spec = plain(body.get("spec") or {})
    target = _target(spec)
    if not target:
        return
    with measured(KIND):
        kube = current().kube
        try:
            pods = kube.list("v1", "Pod", namespace, selector_string(server_selector(target)))
            patch = prune_gone_pods(
                status,
                {pod["metadata"]["name"] for pod in pods},
                consecutive_windows=int(
                    (spec.get("hysteresis") or {}).get("consecutiveWindows", 3)
                ),
                generation=body["metadata"].get("generation"),
                now=now_rfc3339(),
            )
            if patch is not None:
                kube.patch_status(
                    API_VERSION,
                    KIND,
                    namespace,
                    name,
                    patch,
                    resource_version=body["metadata"].get("resourceVersion"),
                )
        except KubeError as error:
            raise kopf_error(error, int(kwargs.get("retry", 0))) from None
