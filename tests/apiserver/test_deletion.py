"""Conformance: finalizers, deletionTimestamp and garbage collection by ownerReferences."""

from __future__ import annotations

import kubernetes
import pytest
from conftest import wait_for

ApiException = kubernetes.client.ApiException


def configmap(name: str, owners: list | None = None, finalizers: list | None = None) -> dict:
    return {
        "metadata": {"name": name, "ownerReferences": owners or [], "finalizers": finalizers or []}
    }


def owner_reference(obj, block: bool = False) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "blockOwnerDeletion": block,
    }


def exists(core, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, "default")
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise


def test_delete_without_finalizers_removes_the_object(core):
    core.create_namespaced_config_map("default", configmap("a"))
    core.delete_namespaced_config_map("a", "default")
    assert not exists(core, "a")


def test_finalizers_hold_the_object_until_removed(core):
    core.create_namespaced_config_map("default", configmap("a", finalizers=["example.com/hold"]))
    core.delete_namespaced_config_map("a", "default")
    held = core.read_namespaced_config_map("a", "default")
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["example.com/hold"]
    core.delete_namespaced_config_map("a", "default")  # deleting again changes nothing
    assert (
        core.read_namespaced_config_map("a", "default").metadata.resource_version
        == held.metadata.resource_version
    )
    core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": None}})
    assert not exists(core, "a")


def test_no_new_finalizers_while_deleting(core):
    core.create_namespaced_config_map("default", configmap("a", finalizers=["example.com/hold"]))
    core.delete_namespaced_config_map("a", "default")
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "a",
            "default",
            [{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/other"}],
        )
    assert caught.value.status == 422


def test_delete_precondition_on_resource_version(core):
    created = core.create_namespaced_config_map("default", configmap("a"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_config_map(
            "a",
            "default",
            body={"preconditions": {"resourceVersion": created.metadata.resource_version}},
        )
    assert caught.value.status == 409
    assert exists(core, "a")


def test_background_deletion_collects_dependents(core):
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", [owner_reference(owner)]))
    child = core.read_namespaced_config_map("child", "default")
    core.create_namespaced_config_map("default", configmap("grandchild", [owner_reference(child)]))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Background")
    wait_for(
        lambda: not exists(core, "child") and not exists(core, "grandchild"),
        message="dependents collected",
    )
    assert not exists(core, "owner")


def test_dependent_with_a_remaining_owner_survives(core):
    first = core.create_namespaced_config_map("default", configmap("first"))
    second = core.create_namespaced_config_map("default", configmap("second"))
    core.create_namespaced_config_map(
        "default", configmap("child", [owner_reference(first), owner_reference(second)])
    )
    core.delete_namespaced_config_map("first", "default")
    wait_for(
        lambda: (
            [
                r.uid
                for r in core.read_namespaced_config_map(
                    "child", "default"
                ).metadata.owner_references
            ]
            == [second.metadata.uid]
        ),
        message="dangling reference dropped",
    )


def test_foreground_deletion_waits_for_blocking_dependents(core):
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map(
        "default",
        configmap("child", [owner_reference(owner, block=True)], finalizers=["example.com/hold"]),
    )
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    waiting = core.read_namespaced_config_map("owner", "default")
    assert waiting.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in waiting.metadata.finalizers
    assert (
        core.read_namespaced_config_map("child", "default").metadata.deletion_timestamp is not None
    )
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    wait_for(
        lambda: not exists(core, "child") and not exists(core, "owner"),
        message="foreground deletion finished",
    )


def test_orphan_deletion_keeps_dependents(core):
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", [owner_reference(owner)]))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    wait_for(lambda: not exists(core, "owner"), message="owner deleted")
    assert not core.read_namespaced_config_map("child", "default").metadata.owner_references


def test_deleting_a_namespace_deletes_its_objects(core):
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_config_map("scratch", configmap("a"))
    core.delete_namespace("scratch")
    wait_for(
        lambda: not core.list_namespaced_config_map("scratch").items, message="namespace emptied"
    )


def test_delete_collection_with_selector(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"x": "1"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b", "labels": {"x": "2"}}})
    core.delete_collection_namespaced_config_map("default", label_selector="x=1")
    assert [o.metadata.name for o in core.list_namespaced_config_map("default").items] == ["b"]


def test_dependent_of_a_missing_owner_is_collected(core):
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "ghost",
        "uid": "8b1e2c1a-0000-4000-8000-000000000000",
    }
    core.create_namespaced_config_map("default", configmap("orphan", [ghost]))
    wait_for(lambda: not exists(core, "orphan"), message="dangling dependent collected")
