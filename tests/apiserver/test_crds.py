"""Conformance: CustomResourceDefinitions register resources; custom objects are validated."""

from __future__ import annotations

import copy

import kubernetes
import pytest
import yaml
from conftest import (
    REPO_ROOT,
    WIDGET_CRD,
    WIDGET_GROUP,
    WIDGET_PLURAL,
    WIDGET_VERSION,
    http,
    status_of,
    wait_for,
    widget,
)

ApiException = kubernetes.client.ApiException
ARGS = (WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL)


def test_creating_a_crd_registers_its_resource_for_discovery(server, widgets):
    status, groups = http(server, "GET", "/apis")
    assert status == 200
    assert WIDGET_GROUP in [g["name"] for g in groups["groups"]]
    status, resources = http(server, "GET", f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}")
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["widgets"]["kind"] == "Widget" and by_name["widgets"]["namespaced"] is True
    assert by_name["widgets"]["shortNames"] == ["wd"]
    assert {"widgets/status", "widgets/scale"} <= set(by_name)


def test_custom_resource_is_unknown_before_its_crd(custom):
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(*ARGS)
    assert caught.value.status == 404


def test_deleting_the_crd_removes_the_resource_and_its_objects(api, widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w"))
    kubernetes.client.ApiextensionsV1Api(api).delete_custom_resource_definition(
        WIDGET_CRD["metadata"]["name"]
    )

    def gone() -> bool:
        try:
            widgets.list_namespaced_custom_object(*ARGS)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, message="resource unregistered")


def test_invalid_crd_is_rejected(api):
    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = "wrong.name"
    with pytest.raises(ApiException) as caught:
        kubernetes.client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    assert caught.value.status == 422


def test_required_field(widgets):
    body = widget("w")
    del body["spec"]["size"]
    with pytest.raises(ApiException) as caught:
        widgets.create_namespaced_custom_object(*ARGS, body)
    status = status_of(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"] == 'Widget.test.driftline.io "w" is invalid: spec.size: Required value'
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"size": 0}, "spec.size"),
        ({"size": 11}, "spec.size"),
        ({"size": "big"}, "spec.size"),
        ({"size": 1, "color": "purple"}, "spec.color"),
        ({"size": 1, "label": "Not Lower"}, "spec.label"),
    ],
)
def test_schema_violations_are_422(widgets, spec, field):
    with pytest.raises(ApiException) as caught:
        widgets.create_namespaced_custom_object(*ARGS, {**widget("w"), "spec": spec})
    assert caught.value.status == 422
    assert [c["field"] for c in status_of(caught.value)["details"]["causes"]] == [field]
    with pytest.raises(ApiException):
        widgets.get_namespaced_custom_object(*ARGS, "w")


def test_unknown_fields_are_pruned_and_defaults_applied(widgets):
    created = widgets.create_namespaced_custom_object(
        *ARGS, {**widget("w"), "spec": {"size": 2, "unknown": True}, "extra": 1}
    )
    assert created["spec"] == {"size": 2, "replicas": 1}
    assert "extra" not in created


def test_transition_rule_with_old_self(widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w", color="red"))
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object(*ARGS, "w", {"spec": {"color": "blue"}})
    assert caught.value.status == 422
    assert "color is immutable" in status_of(caught.value)["message"]
    assert (
        widgets.patch_namespaced_custom_object(*ARGS, "w", {"spec": {"size": 3}})["spec"]["size"]
        == 3
    )


def test_status_writes_are_validated(widgets):
    widgets.create_namespaced_custom_object(*ARGS, widget("w"))
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object_status(*ARGS, "w", {"status": {"replicas": "three"}})
    assert caught.value.status == 422


CRDS = REPO_ROOT / "crds"


@pytest.mark.skipif(
    not (CRDS / "modelversions.driftline.io.yaml").exists(),
    reason="the project's CRDs are not generated",
)
def test_project_crds_validate_the_examples(server, core, custom):
    server.load_crds(CRDS)
    core.create_namespace({"metadata": {"name": "ml"}})
    documents = [
        d
        for d in yaml.safe_load_all(
            (REPO_ROOT / "examples/cpu-canary/modelversions.yaml").read_text()
        )
        if d
    ]
    for document in documents:
        created = custom.create_namespaced_custom_object(
            "driftline.io", "v1alpha1", "ml", "modelversions", document
        )
        assert created["spec"]["format"] == "onnx"  # defaulted from the schema
    name = documents[0]["metadata"]["name"]
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(
            "driftline.io", "v1alpha1", "ml", "modelversions", name, {"spec": {"version": "9.9.9"}}
        )
    assert (
        caught.value.status == 422
    )  # the spec of a ModelVersion is immutable (a CEL transition rule)
    broken = copy.deepcopy(documents[0])
    broken["metadata"]["name"] = "broken"
    broken["spec"]["artifact"]["sha256"] = "not-a-digest"
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            "driftline.io", "v1alpha1", "ml", "modelversions", broken
        )
    assert caught.value.status == 422
    assert "spec.artifact.sha256" in status_of(caught.value)["message"]


def test_discovery_prefers_the_highest_priority_version(server, api):
    crd = copy.deepcopy(WIDGET_CRD)
    crd["spec"]["versions"][0]["storage"] = False
    beta = {**copy.deepcopy(crd["spec"]["versions"][0]), "name": "v1beta1"}
    v2alpha = {**copy.deepcopy(crd["spec"]["versions"][0]), "name": "v2alpha1"}
    crd["spec"]["versions"] = [beta, crd["spec"]["versions"][0], v2alpha]
    crd["spec"]["versions"][1]["storage"] = True
    kubernetes.client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    status, group = http(server, "GET", f"/apis/{WIDGET_GROUP}")
    assert status == 200
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1", "v2alpha1"]
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        WIDGET_GROUP,
        "v1beta1",
        "default",
        WIDGET_PLURAL,
        {**widget("w"), "apiVersion": f"{WIDGET_GROUP}/v1beta1"},
    )
    read = custom.get_namespaced_custom_object(WIDGET_GROUP, "v1", "default", WIDGET_PLURAL, "w")
    assert read["apiVersion"] == f"{WIDGET_GROUP}/v1"  # one storage, served at every version
