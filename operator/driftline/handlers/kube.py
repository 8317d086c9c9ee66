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
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import kubernetes
import urllib3

from driftline.render.labels import FIELD_MANAGER

EVENT_SOURCE = "driftline-operator"

# (apiVersion, kind) -> plural, for every kind the operator reads or writes.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Pod"): "pods",
    ("v1", "Secret"): "secrets",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("batch/v1", "Job"): "jobs",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("driftline.io/v1alpha1", "ModelVersion"): "modelversions",
    ("driftline.io/v1alpha1", "ModelDeployment"): "modeldeployments",
    ("driftline.io/v1alpha1", "DriftPolicy"): "driftpolicies",
}

# Retrying can help: conflicts, throttling, server trouble, and no answer at all (0).
RETRYABLE_STATUSES = frozenset({0, 409, 429, 500, 502, 503, 504})


class KubeError(Exception):
    """An API request that failed; status 0 means no answer (timeout, connection refused).

    One subclass per failure class, so callers catch what they can handle (a conflict, an
    object that is gone) and let the rest propagate; the underlying error is chained."""

    def __init__(self, status: int, reason: str, message: str, what: str) -> None:
        super().__init__(f"{what}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES

    @staticmethod
    def of(status: int, reason: str, message: str, what: str) -> KubeError:
        """The error of the class that `status` (and, for 409, `reason`) names."""
        if status == 409:
            kind: type[KubeError] = AlreadyExists if reason == "AlreadyExists" else Conflict
        else:
            kind = _ERROR_CLASSES.get(
                status, Unavailable if status == 0 or status >= 500 else KubeError
            )
        return kind(status, reason, message, what)


class NoAnswer(KubeError):
    """The API server did not answer (connection refused, timeout)."""


class Unavailable(KubeError):
    """The API server answered 5xx: it may work on the next try."""


class Throttled(KubeError):
    """429: too many requests; try again later."""


class Conflict(KubeError):
    """409 on a write carrying a stale resourceVersion: read again and recompute."""


class AlreadyExists(KubeError):
    """409 on a create: an object of that name exists (perhaps not ours)."""


class NotFound(KubeError):
    """404: the object (or its namespace) is not there."""


class Invalid(KubeError):
    """400 or 422: the request itself is wrong; retrying the same request cannot help."""


class Forbidden(KubeError):
    """401 or 403: the operator lacks a grant; only a change of RBAC helps."""


_ERROR_CLASSES: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    422: Invalid,
    429: Throttled,
}


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


class KubeApi(Protocol):
    """What the operator asks of the Kubernetes API. The HTTP client below is the real one;
    tests exercise handlers in-process with another implementation of the same calls."""

    def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> bool: ...

    def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None: ...

    def patch_metadata(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        metadata: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None: ...

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None: ...


@dataclass
class Kube:
    """The Kubernetes API over HTTP (implements KubeApi)."""

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
            raise NoAnswer(0, "NoResponse", str(error), what) from error
        data = response.data
        if response.status >= 400:
            reason, message = response.reason or "", data.decode(errors="replace")[:2000]
            try:
                status = json.loads(data)
                reason = status.get("reason") or reason
                message = status.get("message") or message
            except ValueError:
                pass
            raise KubeError.of(response.status, reason, message, what)
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

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create; AlreadyExists when the name is taken (by us or by anyone else)."""
        metadata = obj["metadata"]
        result: dict[str, Any] = self._request(
            "POST",
            resource_path(obj["apiVersion"], obj["kind"], metadata.get("namespace")),
            f"create {describe(obj)}",
            query={"fieldManager": FIELD_MANAGER},
            body=obj,
            content_type="application/json",
        )
        return result

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._request(
                "GET",
                resource_path(api_version, kind, namespace, name),
                f"get {kind} {namespace}/{name}",
            )
        except NotFound:
            return None
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

    def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete in the background; False when it was already gone. With `uid`, only that
        very object (a precondition), never another one that took its name since."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._request(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                f"delete {kind} {namespace}/{name}",
                body=body,
                content_type="application/json",
            )
        except NotFound:
            return False
        except Conflict:
            if uid:
                return False  # the name now belongs to another object: ours is gone
            raise
        return True

    def _merge_patch(self, path: str, what: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._request(
                "PATCH", path, what, body=body, content_type="application/merge-patch+json"
            )
        except NotFound:
            return None
        return result

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
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self._merge_patch(
            resource_path(api_version, kind, namespace, name) + "/status",
            f"status of {kind} {namespace}/{name}",
            body,
        )

    def patch_metadata(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        metadata: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """A merge patch of metadata (finalizers, annotations); None when the object is gone."""
        patch: dict[str, Any] = dict(metadata)
        if resource_version:
            patch["resourceVersion"] = resource_version
        return self._merge_patch(
            resource_path(api_version, kind, namespace, name),
            f"metadata of {kind} {namespace}/{name}",
            {"metadata": patch},
        )

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, now: str
    ) -> None:
        """A core/v1 Event about `involved`, as kubectl describe shows them."""
        metadata = involved.get("metadata", {})
        namespace = metadata.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'driftline')}.",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": EVENT_SOURCE,
        }
        self._request(
            "POST",
            resource_path("v1", "Event", namespace),
            f"post Event {reason} on {describe(involved)}",
            body=event,
            content_type="application/json",
        )


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
