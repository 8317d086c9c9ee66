"""One Deployment per track (stable, canary, preview) serving one ModelVersion."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import ModelDeploymentSpec
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

SERVER_CONTAINER = "server"
EVALUATOR_CONTAINER = "drift-evaluator"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
# The evaluator is light: it keeps windows of sampled rows and runs tests every interval.
# Sampled requests go from the server to the sidecar over a Unix socket in a shared
# emptyDir (the root filesystem is read-only, and nothing outside the pod can reach it).
SOCKET_VOLUME = "drift-socket"
SOCKET_DIR = "/var/run/driftline"
SAMPLE_SOCKET = f"unix://{SOCKET_DIR}/samples.sock"
# The service-account token goes to the drift sidecar alone: the serving container parses
# untrusted input and must not hold credentials that can patch the DriftPolicy's status.
# The pod mounts no token (automountServiceAccountToken: false); the sidecar gets the same
# projected volume that Kubernetes would mount, at the same path, so in-cluster clients
# find it as usual.
TOKEN_VOLUME = "drift-evaluator-api-access"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_EXPIRATION_SECONDS = 3607  # Kubernetes' own choice; the kubelet rotates it
EVALUATOR_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


def _env(name: str, value: object) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def server_env(
    spec: ModelDeploymentSpec,
    model_version: ModelVersion,
    policy: DriftPolicy | None,
    settings: RenderSettings,
    track: str = "stable",
) -> list[dict[str, Any]]:
    """DRIFTLINE_* options of `driftline-serve` (see driftline_serving.server.config)."""
    serving = spec.serving
    mv = model_version.spec
    env = [
        _env("DRIFTLINE_MODEL_NAME", mv.model),
        _env("DRIFTLINE_MODEL_VERSION", mv.version),
        # The request metrics' `version` and `track` labels, which analysis queries select
        # on (`version="{{version}}"` is the ModelVersion's name).
        _env("DRIFTLINE_MODEL_VERSION_NAME", model_version.metadata["name"]),
        _env("DRIFTLINE_TRACK", track),
        _env("DRIFTLINE_MODEL_URI", mv.artifact.uri),
        _env("DRIFTLINE_SHA256", mv.artifact.sha256),
        _env("DRIFTLINE_PORT", serving.port),
        _env("DRIFTLINE_MAX_BATCH_SIZE", serving.max_batch_size),
        _env("DRIFTLINE_MAX_BATCH_WAIT_MS", serving.max_batch_delay_ms),
        _env("DRIFTLINE_MAX_BODY_BYTES", serving.max_request_bytes),
        _env("DRIFTLINE_ARTIFACT_DIR", ARTIFACT_DIR),
    ]
    # 0 means "match the CPU limit", which is the server's own default: leave it unset.
    if serving.intra_op_threads > 0:
        env.append(_env("DRIFTLINE_INTRA_OP_THREADS", serving.intra_op_threads))
    if spec.gpu is not None:
        env.append(_env("DRIFTLINE_GPU", "true"))
    if policy is not None:
        env.append(_env("DRIFTLINE_DRIFT_SAMPLING_RATE", policy.spec.sampling.rate))
        env.append(_env("DRIFTLINE_DRIFT_QUEUE_ROWS", policy.spec.sampling.queue_size))
        env.append(_env("DRIFTLINE_DRIFT_SAMPLE_SOCKET", SAMPLE_SOCKET))
        # answers name their pod, where labels for them must be sent (docs/evaluator.md)
        env.append(_field_env("DRIFTLINE_POD_NAME", "metadata.name"))
    return env


def server_resources(spec: ModelDeploymentSpec) -> dict[str, Any]:
    requests = dict(spec.resources.requests)
    limits = dict(spec.resources.limits)
    if spec.gpu is not None:
        # Extended resources are set in limits only; Kubernetes copies them to requests.
        limits[spec.gpu.resource_name] = str(spec.gpu.count)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def server_container(
    spec: ModelDeploymentSpec,
    model_version: ModelVersion,
    policy: DriftPolicy | None,
    settings: RenderSettings,
    track: str = "stable",
) -> dict[str, Any]:
    secret = model_version.spec.artifact.secret_ref
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": spec.serving.image or settings.serving_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["driftline-serve"],
        "env": server_env(spec, model_version, policy, settings, track),
        "ports": [{"name": "http", "containerPort": spec.serving.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": LIVE_PATH, "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # Downloading and loading a large model may take minutes; liveness waits for this.
        "startupProbe": {
            "httpGet": {"path": LIVE_PATH, "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 120,
        },
        "resources": server_resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": scratch_mounts(),
    }
    if policy is not None:
        container["volumeMounts"].append(_socket_mount())
    env_from = secret_env_from(secret.name if secret else None)
    if env_from:
        container["envFrom"] = env_from
    return container


def _socket_mount() -> dict[str, Any]:
    return {"name": SOCKET_VOLUME, "mountPath": SOCKET_DIR}


def token_volume() -> dict[str, Any]:
    """The API credentials of the pod's ServiceAccount, as Kubernetes projects them."""
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "token",
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def evaluator_container(
    model_version_name: str,
    model_version: ModelVersion,
    policy: DriftPolicy,
    settings: RenderSettings,
    image: str,
) -> dict[str, Any]:
    reference = model_version.spec.reference
    env = [
        _env("DRIFTLINE_POLICY_NAME", policy.metadata["name"]),
        _field_env("DRIFTLINE_POLICY_NAMESPACE", "metadata.namespace"),
        _field_env("DRIFTLINE_POD_NAME", "metadata.name"),
        _env("DRIFTLINE_MODEL_VERSION", model_version_name),
        _env("DRIFTLINE_DRIFT_SAMPLE_SOCKET", SAMPLE_SOCKET),
        _env("DRIFTLINE_LISTEN_PORT", settings.evaluator_port),
        _env("DRIFTLINE_ARTIFACT_DIR", ARTIFACT_DIR),
        _env(
            "DRIFTLINE_BASELINE_METRICS",
            json.dumps(model_version.spec.metrics, separators=(",", ":"), sort_keys=True),
        ),
    ]
    if reference is not None:
        env.append(_env("DRIFTLINE_REFERENCE_URI", reference.uri))
        env.append(_env("DRIFTLINE_REFERENCE_SHA256", reference.sha256))
    container: dict[str, Any] = {
        "name": EVALUATOR_CONTAINER,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["driftline-evaluator"],
        "env": env,
        "ports": [
            {"name": "evaluator", "containerPort": settings.evaluator_port, "protocol": "TCP"}
        ],
        "resources": EVALUATOR_RESOURCES,
        "securityContext": container_security_context(),
        "volumeMounts": [
            *scratch_mounts(),
            _socket_mount(),
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }
    secret = reference.secret_ref if reference else None
    env_from = secret_env_from(secret.name if secret else None)
    if env_from:
        container["envFrom"] = env_from
    return container


def scheduling(spec: ModelDeploymentSpec, selector: Mapping[str, str]) -> dict[str, Any]:
    """GPU node selection, tolerations, runtime class and topology spread for the pod spec."""
    pod: dict[str, Any] = {}
    if spec.gpu is not None:
        if spec.gpu.node_selector:
            pod["nodeSelector"] = dict(spec.gpu.node_selector)
        if spec.gpu.tolerations:
            pod["tolerations"] = [t.wire() for t in spec.gpu.tolerations]
        if spec.gpu.runtime_class_name:
            pod["runtimeClassName"] = spec.gpu.runtime_class_name
    if spec.topology_spread is not None:
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": spec.topology_spread.max_skew,
                "topologyKey": spec.topology_spread.topology_key,
                # Spreading is a preference: a zone outage must not block scheduling.
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)},
            }
        ]
    return pod


def render_deployment(
    owner: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    *,
    track: str,
    model_version: ModelVersion,
    replicas: int | None,
    policy: DriftPolicy | None,
    settings: RenderSettings,
) -> dict[str, Any]:
    """The Deployment of one track.

    replicas None leaves the field out, so that the HPA, not the operator, owns it under
    server-side apply.
    """
    if track not in lbl.TRACKS:
        raise ValueError(f"unknown track {track!r}; expected one of {', '.join(lbl.TRACKS)}")
    deployment_name = owner["metadata"]["name"]
    mv_name = model_version.metadata["name"]
    selector = lbl.track_selector(deployment_name, track)
    object_labels = {
        **lbl.standard_labels(
            name=model_version.spec.model,
            instance=deployment_name,
            component=lbl.COMPONENT_SERVER,
            version=model_version.spec.version,
        ),
        lbl.TRACK: track,
        lbl.MODEL_VERSION: lbl.label_value(mv_name),
    }
    pod_labels = {
        **object_labels,
        **settings.extra_pod_labels,
        lbl.TRAFFIC: "active" if track in lbl.TRAFFIC_TRACKS else "preview",
    }
    containers = [server_container(spec, model_version, policy, settings, track)]
    if policy is not None:
        containers.append(
            evaluator_container(
                mv_name,
                model_version,
                policy,
                settings,
                spec.serving.image or settings.serving_image,
            )
        )
    volumes = scratch_volumes()
    if policy is not None:
        volumes.append(
            {"name": SOCKET_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
        )
        volumes.append(token_volume())
    pod_spec: dict[str, Any] = {
        "containers": containers,
        "volumes": volumes,
        "securityContext": pod_security_context(),
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 45,
        # No container gets a token by default; only the sidecar mounts one (token_volume).
        "automountServiceAccountToken": False,
        **scheduling(spec, selector),
    }
    if policy is not None:
        pod_spec["serviceAccountName"] = lbl.evaluator_account_name(deployment_name)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 3,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        },
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(spec.serving.port),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": lbl.object_metadata(
            lbl.track_deployment_name(deployment_name, track),
            owner,
            object_labels,
            {lbl.MODEL_VERSION: mv_name},
        ),
        "spec": deployment_spec,
    }
