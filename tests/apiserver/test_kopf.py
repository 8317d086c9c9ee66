"""A kopf operator against the local API: every handler fires exactly once per change,
also across an operator restart; peering and namespace watching work."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import kopf
import kubernetes
import pytest
from conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, wait_for, widget

ARGS = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "scope": "Cluster",
        "group": "kopf.dev",
        "names": {
            "kind": "ClusterKopfPeering",
            "plural": "clusterkopfpeerings",
            "singular": "clusterkopfpeering",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                },
            }
        ],
    },
}


class Recorder:
    """What the handlers saw, safe to read from the test thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def record(self, handler: str, name: str) -> None:
        with self.lock:
            self.calls[(handler, name)] += 1

    def count(self, handler: str, name: str) -> int:
        with self.lock:
            return self.calls[(handler, name)]


def build_registry(url: str, recorder: Recorder) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    resource = (WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True, default_namespace="default")

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.reconnect_backoff = 0.1
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()

    @kopf.on.create(*resource, registry=registry)
    def created(name: str, **_: Any) -> None:
        recorder.record("create", name)

    @kopf.on.update(*resource, field="spec", registry=registry)
    def updated(name: str, new: Any, **_: Any) -> None:
        recorder.record(f"update:{new['size']}", name)

    @kopf.on.delete(*resource, registry=registry)
    def deleted(name: str, **_: Any) -> None:
        recorder.record("delete", name)

    @kopf.timer(*resource, interval=0.2, registry=registry)
    def ticked(name: str, **_: Any) -> None:
        recorder.record("timer", name)

    return registry


@contextlib.contextmanager
def running_operator(url: str, recorder: Recorder, **options: Any) -> Iterator[None]:
    """kopf in-process, on its own loop in a thread; stopped (and awaited) on exit."""
    stop_flag, ready_flag = threading.Event(), threading.Event()
    registry = build_registry(url, recorder)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry, stop_flag=stop_flag, ready_flag=ready_flag, **options
                )
            )
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="kopf-operator", daemon=True)
    thread.start()
    try:
        wait_for(lambda: ready_flag.is_set() or errors, timeout=30, message="operator ready")
        assert not errors, errors
        yield
    finally:
        stop_flag.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "operator did not stop"
    assert not errors, errors


def test_each_handler_fires_exactly_once_per_change_across_a_restart(server, widgets):
    recorder = Recorder()
    with running_operator(server.url, recorder, clusterwide=True, standalone=True):
        widgets.create_namespaced_custom_object(*ARGS, widget("w", size=1))
        wait_for(lambda: recorder.count("create", "w") == 1, message="create handler")
        wait_for(
            lambda: (
                FINALIZER
                in (
                    widgets.get_namespaced_custom_object(*ARGS, "w")["metadata"].get("finalizers")
                    or []
                )
            ),
            message="finalizer",
        )
        widgets.patch_namespaced_custom_object(*ARGS, "w", {"spec": {"size": 2}})
        wait_for(lambda: recorder.count("update:2", "w") == 1, message="update handler")
        wait_for(lambda: recorder.count("timer", "w") >= 2, message="timer")

    # A new operator process picks the object up from the list: nothing has changed, so
    # no handler but the timer may fire. One more change proves it has processed the object.
    with running_operator(server.url, recorder, clusterwide=True, standalone=True):
        widgets.patch_namespaced_custom_object(*ARGS, "w", {"spec": {"size": 3}})
        wait_for(lambda: recorder.count("update:3", "w") == 1, message="update after restart")
        widgets.patch_namespaced_custom_object(
            *ARGS, "w", {"metadata": {"labels": {"not": "spec"}}}
        )
        widgets.delete_namespaced_custom_object(*ARGS, "w")
        wait_for(lambda: recorder.count("delete", "w") == 1, message="delete handler")

        def gone() -> bool:
            try:
                widgets.get_namespaced_custom_object(*ARGS, "w")
            except kubernetes.client.ApiException as error:
                return error.status == 404
            return False

        wait_for(gone, message="finalizer released")

    assert recorder.count("create", "w") == 1
    assert recorder.count("update:2", "w") == 1
    assert recorder.count("update:3", "w") == 1
    assert recorder.count("delete", "w") == 1
    assert {handler for handler, _ in recorder.calls} == {
        "create",
        "update:2",
        "update:3",
        "delete",
        "timer",
    }


def test_cluster_peering(server, api, widgets):
    kubernetes.client.ApiextensionsV1Api(api).create_custom_resource_definition(PEERING_CRD)
    custom = kubernetes.client.CustomObjectsApi(api)
    peering = ("kopf.dev", "v1", "clusterkopfpeerings")
    custom.create_cluster_custom_object(
        *peering,
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": "default"},
        },
    )
    recorder = Recorder()
    with running_operator(
        server.url,
        recorder,
        clusterwide=True,
        peering_name="default",
        priority=10,
        identity="operator-1",
    ):
        wait_for(
            lambda: (
                "operator-1"
                in (custom.get_cluster_custom_object(*peering, "default").get("status") or {})
            ),
            message="peering heartbeat",
        )
        widgets.create_namespaced_custom_object(*ARGS, widget("w"))
        wait_for(lambda: recorder.count("create", "w") == 1, message="create handler")
    # On a clean exit the operator removes itself from the peering object.
    wait_for(
        lambda: (
            "operator-1"
            not in (custom.get_cluster_custom_object(*peering, "default").get("status") or {})
        ),
        message="peering cleaned up",
    )


def test_namespace_patterns(server, custom, widgets, core):
    core.create_namespace({"metadata": {"name": "team-a"}})
    recorder = Recorder()
    with running_operator(server.url, recorder, namespaces=["team-*"], standalone=True):
        custom.create_namespaced_custom_object(
            WIDGET_GROUP, WIDGET_VERSION, "team-a", WIDGET_PLURAL, widget("in-a")
        )
        widgets.create_namespaced_custom_object(*ARGS, widget("in-default"))
        wait_for(lambda: recorder.count("create", "in-a") == 1, message="existing namespace served")
        core.create_namespace({"metadata": {"name": "team-b"}})
        custom.create_namespaced_custom_object(
            WIDGET_GROUP, WIDGET_VERSION, "team-b", WIDGET_PLURAL, widget("in-b")
        )
        wait_for(lambda: recorder.count("create", "in-b") == 1, message="new namespace noticed")
    assert recorder.count("create", "in-default") == 0


@pytest.mark.parametrize("kind", [500, 429])
def test_operator_recovers_from_injected_faults(server, widgets, kind):
    recorder = Recorder()
    with running_operator(server.url, recorder, clusterwide=True, standalone=True):
        server.faults.inject(
            kind, verbs=frozenset({"patch"}), resource=f"{WIDGET_PLURAL}.{WIDGET_GROUP}", times=2
        )
        widgets.create_namespaced_custom_object(*ARGS, widget("w"))
        wait_for(
            lambda: (
                FINALIZER
                in (
                    widgets.get_namespaced_custom_object(*ARGS, "w")["metadata"].get("finalizers")
                    or []
                )
            ),
            timeout=30,
            message="finalizer after faults",
        )
        wait_for(lambda: recorder.count("create", "w") >= 1, timeout=30, message="create handler")
