"""Conformance: list and watch, resourceVersions, bookmarks, 410 Gone, selectors."""

from __future__ import annotations

import socket

import kubernetes
import pytest
from conftest import status_of, wait_for, watch_events

ApiException = kubernetes.client.ApiException


def configmap(name: str, labels: dict | None = None, **data: str) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def test_watch_from_a_resource_version_sends_only_later_changes(core):
    core.create_namespaced_config_map("default", configmap("before"))
    listed = core.list_namespaced_config_map("default")
    core.create_namespaced_config_map("default", configmap("after"))
    core.patch_namespaced_config_map("before", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("after", "default")
    events = watch_events(
        core.list_namespaced_config_map,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "before"),
        ("DELETED", "after"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


def test_watch_without_resource_version_starts_with_current_state(core):
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    events = watch_events(core.list_namespaced_config_map, "default", timeout_seconds=1)
    assert sorted((e["type"], e["object"]["metadata"]["name"]) for e in events) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_watch_resumed_from_last_seen_version_repeats_nothing(core):
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a"))
    first = watch_events(
        core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
    )
    last_seen = first[-1]["object"]["metadata"]["resourceVersion"]
    core.create_namespaced_config_map("default", configmap("b"))
    second = watch_events(
        core.list_namespaced_config_map, "default", resource_version=last_seen, timeout_seconds=1
    )
    assert [e["object"]["metadata"]["name"] for e in first] == ["a"]
    assert [e["object"]["metadata"]["name"] for e in second] == ["b"]


def test_watch_timeout_ends_the_stream(core):
    # The stream ends by itself (watch_events returns) with no event when nothing changes.
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    assert (
        watch_events(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        )
        == []
    )


def test_bookmarks_carry_the_latest_resource_version(core):
    created = core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map(
        "kube-system", configmap("elsewhere")
    )  # bumps the version, not this watch
    latest = core.list_namespaced_config_map("default").metadata.resource_version
    events = watch_events(
        core.list_namespaced_config_map,
        "default",
        resource_version=created.metadata.resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=2,
    )
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, events
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(latest)
    assert all(e["type"] == "BOOKMARK" for e in events)


def test_too_old_resource_version_is_410_gone(server, core):
    old = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    server.call(server.cluster.store.compact)  # what etcd compaction does in a real cluster
    events = watch_events(
        core.list_namespaced_config_map,
        "default",
        resource_version=str(int(old) - 1),
        timeout_seconds=1,
    )
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


def test_kubernetes_watch_raises_gone(server, core):
    old = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    server.call(server.cluster.store.compact)
    watch = kubernetes.watch.Watch()
    with pytest.raises(ApiException) as caught:
        for _ in watch.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=str(int(old) - 1),
            timeout_seconds=1,
        ):
            pass
    assert caught.value.status == 410


def test_label_selectors_on_list(core):
    core.create_namespaced_config_map("default", configmap("a", {"app": "x", "tier": "web"}))
    core.create_namespaced_config_map("default", configmap("b", {"app": "y", "tier": "web"}))
    core.create_namespaced_config_map("default", configmap("c", {"app": "z"}))

    def names(selector: str) -> list[str]:
        return [
            o.metadata.name
            for o in core.list_namespaced_config_map("default", label_selector=selector).items
        ]

    assert names("app=x") == ["a"]
    assert names("app!=x") == ["b", "c"]
    assert names("app in (x,z)") == ["a", "c"]
    assert names("app notin (x,z),tier") == ["b"]
    assert names("!tier") == ["c"]
    assert names("tier=web,app=y") == ["b"]


def test_field_selectors_on_list(core):
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("kube-system", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    found = core.list_config_map_for_all_namespaces(field_selector="metadata.name=a")
    assert sorted(o.metadata.namespace for o in found.items) == ["default", "kube-system"]
    found = core.list_config_map_for_all_namespaces(
        field_selector="metadata.namespace=default,metadata.name!=a"
    )
    assert [o.metadata.name for o in found.items] == ["b"]


def test_unsupported_field_selector_is_400(core):
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert caught.value.status == 400
    assert "field label not supported" in status_of(caught.value)["message"]


def test_bad_label_selector_is_400(core):
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", label_selector="a in (b")
    assert caught.value.status == 400


def test_watch_with_label_selector_sees_objects_enter_and_leave(core):
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a", {"app": "x"}))
    core.create_namespaced_config_map("default", configmap("b", {"app": "y"}))
    core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"app": "x"}}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "y"}}})
    events = watch_events(
        core.list_namespaced_config_map,
        "default",
        resource_version=start,
        label_selector="app=x",
        timeout_seconds=1,
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]


def test_watch_with_field_selector_on_one_name(core):
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    events = watch_events(
        core.list_namespaced_config_map,
        "default",
        resource_version=start,
        field_selector="metadata.name=b",
        timeout_seconds=1,
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["b"]


def test_list_pagination(core):
    for index in range(5):
        core.create_namespaced_config_map("default", configmap(f"cm-{index}"))
    first = core.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    names = [o.metadata.name for o in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map("default", limit=2, _continue=token)
        names += [o.metadata.name for o in page.items]
        token = page.metadata._continue
    assert names == [f"cm-{i}" for i in range(5)]


def test_streaming_list_ends_initial_events_with_a_bookmark(core):
    core.create_namespaced_config_map("default", configmap("a"))
    events = watch_events(
        core.list_namespaced_config_map,
        "default",
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_a_client_that_hangs_up_releases_its_watch(server):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        assert connection.recv(12) == b"HTTP/1.1 200"
        wait_for(
            lambda: server.call(server.cluster.store.watcher_count) == 1, message="watch registered"
        )
    wait_for(lambda: server.call(server.cluster.store.watcher_count) == 0, message="watch released")
