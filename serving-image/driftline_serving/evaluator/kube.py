"""The evaluator's two API calls, through the official Kubernetes client.

In a pod the client uses the ServiceAccount token (RBAC: get its own DriftPolicy, patch
its status); outside one, a kubeconfig. Every failure becomes an ApiError with the HTTP
status (0 when no answer came), which the reporter knows how to retry.
"""

from __future__ import annotations

from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from driftline_serving.evaluator.reporter import ApiError

GROUP = "driftline.io"
VERSION = "v1alpha1"
PLURAL = "driftpolicies"


def api_client(kubeconfig: str | None) -> kubernetes.client.ApiClient:
    if kubeconfig:
        return kubernetes.config.new_client_from_config(config_file=kubeconfig)
    kubernetes.config.load_incluster_config()
    return kubernetes.client.ApiClient()


class KubernetesPolicyApi:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        namespace: str,
        name: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.objects = kubernetes.client.CustomObjectsApi(client)
        self.namespace = namespace
        self.name = name
        self.timeout_s = timeout_s

    def get_policy(self) -> dict[str, Any]:
        return self._call(
            self.objects.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
        )

    def patch_policy_status(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            self.objects.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            body,
            _content_type="application/merge-patch+json",
        )

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result = method(*args, _request_timeout=self.timeout_s, **kwargs)
        except ApiException as error:
            raise ApiError(int(error.status or 0), str(error.reason)) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiError(0, f"no answer from the API server: {error}") from error
        if not isinstance(result, dict):
            raise ApiError(0, f"unexpected answer {type(result).__name__}")
        return result
