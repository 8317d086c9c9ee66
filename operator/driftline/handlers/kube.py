"""The one place that talks to the Kubernetes API for the handlers.

Built on the installed `kubernetes` client (its ApiClient handles every way a cluster
authenticates: in-cluster tokens, kubeconfig certificates, exec plugins) and called from
kopf's thread pool. It speaks raw paths so that one server-side apply function serves
every kind, with the field manager "driftline".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes
import urllib3

from driftline.render.labels import FIELD_MANAGER

# (apiVersion, kind) -> plural, for every kind the operator reads or writes.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Pod"): "pods",
    ("apps/v1", "Deployment"): "deployments",
    ("batch/v1", "Job"): "jobs",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("driftline.io/v1alpha1", "ModelVersion"): "modelversions",
    ("driftline.io/v1alpha1", "ModelDeployment"): "modeldeployments",
    ("driftline.io/v1alpha1", "DriftPolicy"): "driftpolicies",
}

# Retrying can help: conflicts, throttling, server trouble, and no answer at all (0).
RETRYABLE_STATUSES = frozenset({0, 409, 429, 500, 502, 503, 504})


class KubeError(Exception):
    """An API request that failed; status 0 means no answer (timeout, connection refused)."""

    def __init__(self, status: int, reason: str, message: str, what: str) -> None:
        super().__init__(f"{what}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


def resource_path(
    api_version: str, kind: str, namespace: str | None, name: str | None = None
) -> str:
    try:
        plural = PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} ({api_version})") from None
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name)}"
    return base


def describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata", {})
    return f"{obj.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name', '')}"


@dataclass
class Kube:
    api_client: kubernetes.client.ApiClient
    # (connect, read) seconds: a hung API server must not hold a worker thread forever.
    timeout: tuple[float, float] = (5.0, 30.0)

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if query:
            path = f"{path}?{urlencode(query)}"
        _, url, headers, _, _ = self.api_client.param_serialize(
            method, path, header_params=headers, auth_settings=["BearerToken"]
        )
        payload = None if body is None else json.dumps(body)
        try:
            response = self.api_client.rest_client.pool_manager.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=self.timeout[0], read=self.timeout[1]),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as error:
            raise KubeError(0, "NoResponse", str(error), what) from None
        data = response.data
        if response.status >= 400:
            reason, message = response.reason or "", data.decode(errors="replace")[:2000]
            try:
                status = json.loads(data)
                reason = status.get("reason") or reason
                message = status.get("message") or message
            except ValueError:
                pass
            raise KubeError(response.status, reason, message, what)
        return json.loads(data) if data else None

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with force: the operator owns the fields it renders."""
        metadata = obj["metadata"]
        path = resource_path(
            obj["apiVersion"], obj["kind"], metadata.get("namespace"), metadata["name"]
        )
        result: dict[str, Any] = self._request(
            "PATCH",
            path,
            f"apply {describe(obj)}",
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return result

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._request(
                "GET",
                resource_path(api_version, kind, namespace, name),
                f"get {kind} {namespace}/{name}",
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return result

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        result = self._request(
            "GET",
            resource_path(api_version, kind, namespace),
            f"list {kind} in {namespace}",
            query=query,
        )
        return list(result.get("items") or [])

    def annotate(
        self, api_version: str, kind: str, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> None:
        """Merge annotations into an object's metadata (a JSON merge patch)."""
        self._request(
            "PATCH",
            resource_path(api_version, kind, namespace, name),
            f"annotate {kind} {namespace}/{name}",
            body={"metadata": {"annotations": dict(annotations)}},
            content_type="application/merge-patch+json",
        )

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            self._request(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                f"delete {kind} {namespace}/{name}",
                body={"propagationPolicy": "Background"},
                content_type="application/json",
            )
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """A merge patch of the status subresource; None when the object is gone.

        With `resource_version`, the API refuses (409) a patch computed from a stale read."""
        path = resource_path(api_version, kind, namespace, name) + "/status"
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            result: dict[str, Any] = self._request(
                "PATCH",
                path,
                f"status of {kind} {namespace}/{name}",
                body=body,
                content_type="application/merge-patch+json",
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return result


def load_client_configuration() -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    # Many handlers run at once in kopf's thread pool; one connection each.
    configuration.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(configuration)
