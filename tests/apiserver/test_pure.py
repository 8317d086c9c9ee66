"""The pure parts: selectors, patches, server-side apply, GC decisions, metadata, the store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.apiserver import apply, gc, metadata, patching
from driftline.apiserver.resources import CrdError, Registry, resources_from_crd
from driftline.apiserver.selectors import (
    SelectorError,
    field_value,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from driftline.apiserver.store import Gone, Store

# --- selectors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a in (b, c)", {"a": "c"}, True),
        ("a notin (b,c)", {"a": "d"}, True),
        ("a notin (b,c)", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        (
            "app.kubernetes.io/name=x,tier in (web)",
            {"app.kubernetes.io/name": "x", "tier": "web"},
            True,
        ),
        ("a=", {"a": ""}, True),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert labels_match(parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("selector", ["a in (b", "a=b=c", "-a=b", "a=-b", "!a in (b)", "a b"])
def test_bad_label_selectors(selector):
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_field_selectors():
    allowed = ("metadata.name", "status.phase")
    selector = parse_field_selector("metadata.name=a,status.phase!=Running", allowed)
    assert fields_match(selector, {"metadata": {"name": "a"}, "status": {"phase": "Pending"}})
    assert not fields_match(selector, {"metadata": {"name": "a"}, "status": {"phase": "Running"}})
    assert fields_match(parse_field_selector("status.phase=", allowed), {"metadata": {"name": "a"}})
    with pytest.raises(SelectorError, match="not supported"):
        parse_field_selector("spec.x=1", allowed)
    assert field_value({"spec": {"flag": True}}, "spec.flag") == "true"


# --- patches --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=2), json_values, max_size=4)


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent(original, patch):
    once = patching.merge_patch(original, patch)
    assert patching.merge_patch(once, patch) == once


@given(json_objects)
def test_merge_patch_with_itself_without_nulls_is_identity(original):
    cleaned = patching.merge_patch({}, original)  # drops nulls
    assert patching.merge_patch(cleaned, cleaned) == cleaned


def test_merge_patch_does_not_touch_its_input():
    original = {"a": {"b": 1}}
    patching.merge_patch(original, {"a": {"b": 2, "c": None}})
    assert original == {"a": {"b": 1}}


def test_json_patch_errors():
    with pytest.raises(patching.PatchError) as caught:
        patching.json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert caught.value.status == 422
    with pytest.raises(patching.PatchError) as caught:
        patching.json_patch({"a": 1}, [{"op": "remove", "path": "/missing"}])
    assert caught.value.status == 422
    with pytest.raises(patching.PatchError) as caught:
        patching.json_patch({"a": 1}, [{"op": "explode", "path": "/a"}])
    assert caught.value.status == 400
    with pytest.raises(patching.PatchError) as caught:
        patching.json_patch({"a": 1}, {"op": "add"})
    assert caught.value.status == 400


def test_strategic_merge_of_keyed_lists():
    original = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "a:1",
                    "volumeMounts": [{"mountPath": "/m", "name": "v"}],
                    "ports": [{"containerPort": 80}],
                },
                {"name": "b", "image": "b:1"},
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
        }
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "volumeMounts": [{"mountPath": "/n", "name": "w"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                },
                {"name": "c", "image": "c:1"},
            ],
            "volumes": [{"name": "w", "emptyDir": {}}],
        }
    }
    result = patching.strategic_merge_patch(original, patch)
    containers = result["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b", "c"]
    assert [m["mountPath"] for m in containers[0]["volumeMounts"]] == ["/m", "/n"]
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert containers[0]["image"] == "a:1"
    assert [v["name"] for v in result["spec"]["volumes"]] == ["v", "w"]


def test_strategic_merge_service_ports_merge_by_port():
    original = {"spec": {"ports": [{"port": 80, "name": "http"}]}}
    result = patching.strategic_merge_patch(
        original, {"spec": {"ports": [{"port": 443, "name": "https"}]}}
    )
    assert [p["port"] for p in result["spec"]["ports"]] == [80, 443]


def test_strategic_merge_directives():
    original = {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"args": ["x"], "selector": {"a": "1", "b": "2"}},
    }
    result = patching.strategic_merge_patch(
        original,
        {
            "metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"args": ["y"], "selector": {"$patch": "replace", "c": "3"}},
        },
    )
    assert result["metadata"]["finalizers"] == ["b", "c"]
    assert result["spec"]["args"] == ["y"]  # lists without a merge key are replaced
    assert result["spec"]["selector"] == {"c": "3"}
    replaced = patching.strategic_merge_patch(
        {"spec": {"containers": [{"name": "a"}]}},
        {"spec": {"containers": [{"$patch": "replace"}, {"name": "b"}]}},
    )
    assert replaced["spec"]["containers"] == [{"name": "b"}]
    with pytest.raises(patching.PatchError):
        patching.strategic_merge_patch(
            {"spec": {"containers": []}}, {"spec": {"containers": [{"image": "no-name"}]}}
        )
    assert patching.strategic_merge_patch({"a": {"b": 1}}, {"a": {"$patch": "delete"}}) == {}


def test_server_side_apply_ownership():
    live: dict = {"metadata": {"name": "x"}}
    first, managers = apply.server_side_apply(
        live, {"metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}}, "one", {}, force=False
    )
    assert managers == {"one": {("data", "a"), ("data", "b")}}
    second, managers = apply.server_side_apply(
        first, {"data": {"c": "3"}}, "two", managers, force=False
    )
    assert second["data"] == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(apply.ApplyConflict) as caught:
        apply.server_side_apply(second, {"data": {"a": "changed"}}, "two", managers, force=False)
    assert caught.value.conflicts == [("one", ("data", "a"))]
    forced, managers = apply.server_side_apply(
        second, {"data": {"a": "changed", "c": "3"}}, "two", managers, force=True
    )
    assert managers["one"] == {("data", "b")} and forced["data"]["a"] == "changed"
    dropped, managers = apply.server_side_apply(forced, {"data": {}}, "one", managers, force=False)
    assert dropped["data"] == {"a": "changed", "c": "3"}


def test_fields_v1_round_trip():
    fields = {("data", "a"), ("metadata", "labels", "x"), ("spec",)}
    assert apply.fields_from_v1(apply.fields_to_v1(fields)) == fields


# --- garbage collection ---------------------------------------------------------------


def dependent(*uids: str, block: bool = False) -> dict:
    return {
        "metadata": {"ownerReferences": [{"uid": u, "blockOwnerDeletion": block} for u in uids]}
    }


def test_gc_decisions():
    assert gc.after_owner_gone(dependent("a"), lambda uid: False) == ("delete", None)
    assert gc.after_owner_gone(dependent("a", "b"), lambda uid: uid == "b") == (
        "drop-references",
        [{"uid": "b", "blockOwnerDeletion": False}],
    )
    assert gc.after_owner_gone(dependent("a"), lambda uid: True) == ("keep", None)
    assert gc.without_reference_to(dependent("a", "b"), "a") == [
        {"uid": "b", "blockOwnerDeletion": False}
    ]
    assert gc.blocks_foreground(dependent("a", block=True), "a")
    assert not gc.blocks_foreground(dependent("a"), "a")


# --- metadata -------------------------------------------------------------------------


def test_metadata_helpers():
    assert metadata.name_problem("ok-name.example") is None
    assert metadata.name_problem("Bad") is not None
    assert metadata.name_problem("a" * 254) is not None
    name = metadata.generated_name("x-")
    assert name.startswith("x-") and len(name) == 7 and metadata.name_problem(name) is None
    old = {"metadata": {"generation": 3}, "spec": {"a": 1}, "status": {"s": 1}}
    assert metadata.next_generation(old, {**old, "status": {"s": 2}}) == 3
    assert metadata.next_generation(old, {**old, "spec": {"a": 2}}) == 4


# --- resources ------------------------------------------------------------------------


def test_crd_conversion_and_errors():
    crd = {
        "metadata": {"name": "things.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}},
                {"name": "v2", "served": False, "storage": False},
            ],
        },
    }
    [resource] = resources_from_crd(crd)
    assert (resource.version, resource.namespaced, resource.status, resource.scale) == (
        "v1",
        False,
        True,
        None,
    )
    with pytest.raises(CrdError):
        resources_from_crd({**crd, "metadata": {"name": "other.example.com"}})
    registry = Registry(())
    registry.register_crd(crd)
    assert registry.get("example.com", "v1", "things") is not None
    registry.unregister_crd("things.example.com")
    assert registry.get("example.com", "v1", "things") is None


# --- store ----------------------------------------------------------------------------


def obj(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "labels": labels}}


async def test_store_versions_history_and_gone():
    store = Store(history_limit=3)
    storage = ("", "configmaps")
    first = store.put(storage, obj("a"))
    store.put(storage, obj("b"))
    backlog, watcher = store.watch(storage, first.revision, lambda o: True)
    assert [e.obj["metadata"]["name"] for e in backlog] == ["b"]
    store.put(storage, obj("c"))
    assert (await watcher.queue.get()).obj["metadata"]["name"] == "c"
    store.put(storage, obj("d"))
    store.put(storage, obj("e"))
    with pytest.raises(Gone):
        store.watch(storage, first.revision, lambda o: True)
    deleted = store.remove(storage, "ns", "a")
    assert deleted is not None and int(deleted.obj["metadata"]["resourceVersion"]) == store.revision


def test_selector_transitions_in_watches():
    storage = ("", "configmaps")
    store = Store()
    store.put(storage, obj("a", app="x"))
    moved = store.put(storage, obj("a", app="y"))
    matches_x = lambda o: o["metadata"]["labels"].get("app") == "x"  # noqa: E731
    assert Store.translate_event(moved, matches_x)[0] == "DELETED"
    back = store.put(storage, obj("a", app="x"))
    assert Store.translate_event(back, matches_x)[0] == "ADDED"
    assert (
        Store.translate_event(store.put(storage, obj("a", app="x", other="1")), matches_x)[0]
        == "MODIFIED"
    )
    assert Store.translate_event(store.put(storage, obj("b", app="z")), matches_x) is None


def test_version_priority():
    from driftline.apiserver.discovery import version_priority

    assert sorted(["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "foo"], key=version_priority) == [
        "v2",
        "v1",
        "v1beta2",
        "v1beta1",
        "v1alpha1",
        "foo",
    ]


def test_printer_column_json_path():
    from driftline.apiserver.tables import json_path

    obj = {
        "spec": {"items": [{"n": 1}, {"n": 2}]},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Drifted", "status": "False"},
            ]
        },
    }
    assert json_path(obj, ".spec.items[1].n") == 2
    assert json_path(obj, '.status.conditions[?(@.type=="Drifted")].status') == "False"
    assert json_path(obj, '.status.conditions[?(@.type=="Missing")].status') is None
    assert json_path(obj, ".spec.missing.deeper") is None
    assert json_path(obj, ".spec.items[7]") is None
    assert json_path(obj, "{unsupported}") is None


def test_human_age():
    import datetime

    from driftline.apiserver.tables import human_age

    now = datetime.datetime(2026, 1, 3, 0, 0, 0, tzinfo=datetime.UTC)
    assert human_age("2026-01-02T23:59:15Z", now) == "45s"
    assert human_age("2026-01-02T23:48:00Z", now) == "12m"
    assert human_age("2026-01-02T19:00:00Z", now) == "5h"
    assert human_age("2026-01-01T00:00:00Z", now) == "2d"
    assert human_age(None, now) == "<unknown>"
