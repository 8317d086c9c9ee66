"""Fixtures for the local Kubernetes API tests: a fresh server per test, clients, a test CRD."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.apiserver_support import RunningApiServer, apiserver, running_apiserver
from tests.support import wait_until

__all__ = ["apiserver"]  # the project's fixture, re-exported for these tests

REPO_ROOT = Path(__file__).resolve().parents[2]
WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL = "test.driftline.io", "v1", "widgets"

# A small CRD exercising what the server must honour: status and scale subresources, a
# schema with defaults, enums, bounds and patterns, and CEL rules including a transition rule.
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.driftline.io"},
    "spec": {
        "group": WIDGET_GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "listKind": "WidgetList",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                    },
                },
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(oldSelf.color) || self.color == oldSelf.color",
                                        "message": "color is immutable",
                                    },
                                ],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "green", "blue"]},
                                    "label": {"type": "string", "pattern": "^[a-z]+$"},
                                    "replicas": {"type": "integer", "default": 1},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "replicas": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningApiServer]:
    with running_apiserver(
        kubeconfig_path=tmp_path / "kubeconfig", bookmark_interval=0.5
    ) as running:
        yield running


@pytest.fixture
def api(server: RunningApiServer) -> Iterator[kubernetes.client.ApiClient]:
    client = server.api_client()
    yield client
    client.close()


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


@pytest.fixture
def apps(api: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api)


@pytest.fixture
def custom(api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


@pytest.fixture
def widgets(
    api: kubernetes.client.ApiClient, custom: kubernetes.client.CustomObjectsApi
) -> kubernetes.client.CustomObjectsApi:
    """Registers the Widget CRD over HTTP and waits until it is Established."""
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(WIDGET_CRD)
    wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in extensions.read_custom_resource_definition(
                "widgets.test.driftline.io"
            ).status.conditions
            or []
        )
    )
    wait_for(lambda: _listable(custom))
    return custom


def _listable(custom: kubernetes.client.CustomObjectsApi) -> bool:
    try:
        custom.list_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)
        return True
    except kubernetes.client.ApiException:
        return False


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{WIDGET_GROUP}/{WIDGET_VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, message: str = "condition"
) -> Any:
    """`tests.support.wait_until` with this folder's keywords."""
    return wait_until(condition, timeout, what=message, interval_s=0.02)


def http(
    server: RunningApiServer,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    **query: str,
) -> tuple[int, Any]:
    """A raw HTTP request, for what the typed client cannot send (apply patches, odd media types)."""
    url = server.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def status_of(error: kubernetes.client.ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def watch_events(call: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """All events of one watch request, read until the server ends it (timeout_seconds)."""
    response = call(*args, watch=True, _preload_content=False, **kwargs)
    events = []
    try:
        buffer = b""
        for chunk in response.stream(4096):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    events.append(json.loads(line))
    finally:
        response.release_conn()
    return events
