"""Conformance: object metadata, optimistic concurrency, PUT and the patch types."""

from __future__ import annotations

import datetime
import uuid

import kubernetes
import pytest
from conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, http, status_of, widget

ApiException = kubernetes.client.ApiException


def configmap(name: str, **data: str) -> dict:
    return {"metadata": {"name": name}, "data": data}


def deployment(name: str, containers: list[dict]) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
    }


def test_create_answers_201_with_server_metadata(core):
    created, status, _ = core.create_namespaced_config_map_with_http_info(
        "default", configmap("a", k="v")
    )
    assert status == 201
    assert created.data == {"k": "v"}
    uuid.UUID(created.metadata.uid)
    assert isinstance(created.metadata.creation_timestamp, datetime.datetime)
    assert created.metadata.resource_version


def test_resource_versions_increase_across_the_cluster(core, apps):
    first = core.create_namespaced_config_map("default", configmap("a"))
    second = core.create_namespaced_config_map("default", configmap("b"))
    third = core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    versions = [int(o.metadata.resource_version) for o in (first, second, third)]
    assert versions == sorted(versions) and len(set(versions)) == 3
    listed = core.list_namespaced_config_map("default")
    assert int(listed.metadata.resource_version) >= versions[-1]


def test_uids_differ_and_survive_updates(core):
    a = core.create_namespaced_config_map("default", configmap("a"))
    b = core.create_namespaced_config_map("default", configmap("b"))
    assert a.metadata.uid != b.metadata.uid
    patched = core.patch_namespaced_config_map(
        "a", "default", {"metadata": {"uid": "forged"}, "data": {"x": "1"}}
    )
    assert patched.metadata.uid == a.metadata.uid
    assert patched.metadata.creation_timestamp == a.metadata.creation_timestamp


def test_generate_name(core):
    created = core.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}})
    assert (
        created.metadata.name.startswith("job-") and len(created.metadata.name) == len("job-") + 5
    )
    assert (
        core.read_namespaced_config_map(created.metadata.name, "default").metadata.uid
        == created.metadata.uid
    )


def test_missing_name_is_invalid(core):
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", {"metadata": {}})
    assert caught.value.status == 422


def test_invalid_name_is_rejected(core):
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("Not_Valid"))
    assert caught.value.status == 422
    assert "metadata.name" in status_of(caught.value)["message"]


def test_duplicate_create_conflicts(core):
    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("a"))
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"


def test_unknown_object_and_namespace_are_404(core):
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("missing", "default")
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'configmaps "missing" not found'
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("no-such-namespace", configmap("a"))
    assert caught.value.status == 404


def test_generation_bumps_on_spec_changes_only(widgets):
    created = widgets.create_namespaced_custom_object(
        WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, widget("w")
    )
    assert created["metadata"]["generation"] == 1
    labelled = widgets.patch_namespaced_custom_object(
        WIDGET_GROUP,
        WIDGET_VERSION,
        "default",
        WIDGET_PLURAL,
        "w",
        {"metadata": {"labels": {"a": "b"}}},
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    with_status = widgets.patch_namespaced_custom_object_status(
        WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, "w", {"status": {"phase": "Ready"}}
    )
    assert with_status["metadata"]["generation"] == 1
    resized = widgets.patch_namespaced_custom_object(
        WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, "w", {"spec": {"size": 2}}
    )
    assert resized["metadata"]["generation"] == 2


def test_no_op_patch_keeps_resource_version(core):
    created = core.create_namespaced_config_map("default", configmap("a", k="v"))
    same = core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    assert same.metadata.resource_version == created.metadata.resource_version


def test_stale_resource_version_conflicts_on_put_and_patch(core):
    created = core.create_namespaced_config_map("default", configmap("a", k="v"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
    stale = created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map(
            "a",
            "default",
            {"metadata": {"name": "a", "resourceVersion": stale}, "data": {"k": "x"}},
        )
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(caught.value)["message"]
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "a", "default", {"metadata": {"resourceVersion": stale}, "data": {"k": "x"}}
        )
    assert caught.value.status == 409
    assert core.read_namespaced_config_map("a", "default").data == {"k": "w"}


def test_failed_json_patch_test_is_422_and_changes_nothing(core):
    created = core.create_namespaced_config_map("default", configmap("a", k="v"))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "a",
            "default",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
                {"op": "replace", "path": "/data/k", "value": "changed"},
            ],
        )
    assert caught.value.status == 422
    assert (
        core.read_namespaced_config_map("a", "default").metadata.resource_version
        == created.metadata.resource_version
    )


def test_json_patch_with_matching_test_applies(core):
    created = core.create_namespaced_config_map("default", configmap("a", k="v"))
    patched = core.patch_namespaced_config_map(
        "a",
        "default",
        [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": created.metadata.resource_version,
            },
            {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"]},
        ],
    )
    assert patched.metadata.finalizers == ["example.com/f"]


def test_put_replaces_the_object(core):
    created = core.create_namespaced_config_map("default", configmap("a", k="v", old="1"))
    created.data = {"k": "new"}
    replaced, status, _ = core.replace_namespaced_config_map_with_http_info("a", "default", created)
    assert status == 200
    assert replaced.data == {"k": "new"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("missing", "default", configmap("missing"))
    assert caught.value.status == 404


def test_put_of_custom_object_requires_resource_version(widgets):
    widgets.create_namespaced_custom_object(
        WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, widget("w")
    )
    with pytest.raises(ApiException) as caught:
        widgets.replace_namespaced_custom_object(
            WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, "w", widget("w", size=3)
        )
    assert caught.value.status == 422


def test_merge_patch_deletes_with_null(widgets):
    widgets.create_namespaced_custom_object(
        WIDGET_GROUP,
        WIDGET_VERSION,
        "default",
        WIDGET_PLURAL,
        widget("w", label="abc", tags=["a", "b"]),
    )
    patched = widgets.patch_namespaced_custom_object(
        WIDGET_GROUP,
        WIDGET_VERSION,
        "default",
        WIDGET_PLURAL,
        "w",
        {"spec": {"label": None, "tags": ["c"]}},
    )
    assert "label" not in patched["spec"]
    assert patched["spec"]["tags"] == ["c"]  # lists are replaced by a merge patch


def test_strategic_merge_patch_merges_containers_and_env_by_name(apps):
    apps.create_namespaced_deployment(
        "default",
        deployment(
            "d",
            [
                {
                    "name": "app",
                    "image": "app:1",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 8080, "name": "http"}],
                },
                {"name": "sidecar", "image": "side:1"},
            ],
        ),
    )
    patched = apps.patch_namespaced_deployment(
        "d",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "app:2",
                                "env": [{"name": "B", "value": "2"}],
                                "ports": [{"containerPort": 9090, "name": "metrics"}],
                            },
                        ]
                    }
                }
            }
        },
    )
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"].image == "app:2"
    assert [e.name for e in containers["app"].env] == ["A", "B"]
    assert [p.container_port for p in containers["app"].ports] == [8080, 9090]
    assert patched.metadata.generation == 2


def test_strategic_merge_patch_delete_directive(apps):
    apps.create_namespaced_deployment(
        "default",
        deployment("d", [{"name": "app", "image": "a"}, {"name": "sidecar", "image": "s"}]),
    )
    patched = apps.patch_namespaced_deployment(
        "d",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )
    assert [c.name for c in patched.spec.template.spec.containers] == ["app"]


def test_strategic_merge_patch_is_refused_for_custom_resources(server, widgets):
    widgets.create_namespaced_custom_object(
        WIDGET_GROUP, WIDGET_VERSION, "default", WIDGET_PLURAL, widget("w")
    )
    path = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/default/{WIDGET_PLURAL}/w"
    status, _ = http(
        server, "PATCH", path, {"spec": {"size": 2}}, "application/strategic-merge-patch+json"
    )
    assert status == 415


def apply(server, path: str, body: dict, manager: str, force: bool = False) -> tuple[int, dict]:
    query = {"fieldManager": manager} | ({"force": "true"} if force else {})
    return http(server, "PATCH", path, body, "application/apply-patch+yaml", **query)


CM_PATH = "/api/v1/namespaces/default/configmaps/applied"


def test_server_side_apply_creates_then_updates(server, core):
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"a": "1", "b": "2"},
    }
    status, created = apply(server, CM_PATH, config, "tool")
    assert status == 201
    assert created["data"] == {"a": "1", "b": "2"}
    assert [m["manager"] for m in created["metadata"]["managedFields"]] == ["tool"]
    status, updated = apply(server, CM_PATH, {**config, "data": {"a": "10"}}, "tool")
    assert status == 200
    assert updated["data"] == {"a": "10"}  # b was applied by this manager before and is no longer
    assert core.read_namespaced_config_map("applied", "default").data == {"a": "10"}


def test_server_side_apply_conflicts_between_managers_unless_forced(server):
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"a": "1"},
    }
    assert apply(server, CM_PATH, config, "first")[0] == 201
    status, body = apply(server, CM_PATH, {**config, "data": {"a": "2"}}, "second")
    assert status == 409
    assert 'conflict with "first"' in body["message"]
    status, forced = apply(server, CM_PATH, {**config, "data": {"a": "2"}}, "second", force=True)
    assert status == 200 and forced["data"] == {"a": "2"}
    status, same_value = apply(server, CM_PATH, {**config, "data": {"a": "2", "c": "3"}}, "first")
    assert same_value["data"] == {"a": "2", "c": "3"}


def test_server_side_apply_requires_a_field_manager(server):
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"a": "1"},
    }
    status, _ = http(server, "PATCH", CM_PATH, config, "application/apply-patch+yaml")
    assert status == 400


def test_dry_run_create_stores_nothing(core):
    created = core.create_namespaced_config_map("default", configmap("a", k="v"), dry_run="All")
    assert created.metadata.name == "a" and created.metadata.uid
    assert core.list_namespaced_config_map("default").items == []


def test_local_api_refuses_dry_run_writes_other_than_create(core):
    # A deviation from a real API server, which supports dry runs of every write.
    core.create_namespaced_config_map("default", configmap("a", k="v"))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}}, dry_run="All")
    assert caught.value.status == 400
    assert core.read_namespaced_config_map("a", "default").data == {"k": "v"}
