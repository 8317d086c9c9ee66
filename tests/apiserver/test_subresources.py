"""Conformance: the status and scale subresources."""

from __future__ import annotations

import kubernetes
from conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, http, widget

ApiException = kubernetes.client.ApiException
ARGS = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)


def test_status_is_dropped_on_create(widgets):
    created = widgets.create_namespaced_custom_object(
        *ARGS, {**widget("w"), "status": {"phase": "Forged"}}
    )
    assert "status" not in created


def test_status_writes_change_only_status(widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w", size=1))
    patched = widgets.patch_namespaced_custom_object_status(
        *ARGS, "w", {"spec": {"size": 9}, "status": {"phase": "Ready"}}
    )
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"]["size"] == 1
    current = widgets.get_namespaced_custom_object(*ARGS, "w")
    current["spec"]["size"] = 7
    current["status"]["phase"] = "Replaced"
    replaced = widgets.replace_namespaced_custom_object_status(*ARGS, "w", current)
    assert replaced["status"]["phase"] == "Replaced" and replaced["spec"]["size"] == 1


def test_main_resource_writes_never_change_status(widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w"))
    widgets.patch_namespaced_custom_object_status(*ARGS, "w", {"status": {"phase": "Ready"}})
    patched = widgets.patch_namespaced_custom_object(
        *ARGS, "w", {"spec": {"size": 2}, "status": {"phase": "Forged"}}
    )
    assert patched["status"] == {"phase": "Ready"} and patched["spec"]["size"] == 2
    current = widgets.get_namespaced_custom_object(*ARGS, "w")
    current["status"] = {"phase": "AlsoForged"}
    assert widgets.replace_namespaced_custom_object(*ARGS, "w", current)["status"] == {
        "phase": "Ready"
    }


def test_status_of_built_in_kinds(apps):
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    patched = apps.patch_namespaced_deployment_status(
        "d", "default", {"status": {"observedGeneration": 41}, "spec": {"replicas": 5}}
    )
    assert patched.status.observed_generation == 41 and patched.spec.replicas == 1


def test_scale_subresource_of_a_custom_resource(widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w", replicas=2))
    scale = widgets.get_namespaced_custom_object_scale(*ARGS, "w")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    widgets.patch_namespaced_custom_object_scale(*ARGS, "w", {"spec": {"replicas": 4}})
    assert widgets.get_namespaced_custom_object(*ARGS, "w")["spec"]["replicas"] == 4
    widgets.patch_namespaced_custom_object_status(*ARGS, "w", {"status": {"replicas": 3}})
    assert widgets.get_namespaced_custom_object_scale(*ARGS, "w")["status"]["replicas"] == 3


def test_scale_subresource_of_a_deployment(server, apps):
    server.controllers.deployments.enabled = False
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    )
    assert apps.read_namespaced_deployment_scale("d", "default").spec.replicas == 2
    scale = apps.read_namespaced_deployment_scale("d", "default")
    scale.spec.replicas = 5
    assert apps.replace_namespaced_deployment_scale("d", "default", scale).spec.replicas == 5
    deployment = apps.read_namespaced_deployment("d", "default")
    assert deployment.spec.replicas == 5 and deployment.metadata.generation == 2


def test_status_of_a_kind_without_status_subresource_is_404(server, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert http(server, "GET", "/api/v1/namespaces/default/configmaps/a/status")[0] == 404


def test_bad_scale_patch_is_rejected_and_changes_nothing(server, widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w", replicas=2))
    path = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/default/{WIDGET_PLURAL}/w/scale"
    status, body = http(
        server, "PATCH", path, {"spec": {"replicas": "many"}}, "application/merge-patch+json"
    )
    assert status == 400 and "replicas" in body["message"]
    status, _ = http(
        server,
        "PATCH",
        path,
        [{"op": "test", "path": "/spec/replicas", "value": 9}],
        "application/json-patch+json",
    )
    assert status == 422
    assert widgets.get_namespaced_custom_object(*ARGS, "w")["spec"]["replicas"] == 2
