"""The story's traffic and its labels: what each request carries, where each label goes,
(the whole path, real servers and sidecars joining the labels, runs in test_story)."""

from __future__ import annotations

from driftline.sandbox.traffic import LabelFeed, feedback_addresses, request_body


def pod(name: str, ip: str | None, ports: list[dict[str, object]]) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "server", "ports": ports}]},
        "status": {"podIP": ip} if ip else {},
    }


def test_a_request_carries_its_id_and_one_row():
    body = request_body("features", [1.5, 2.0], "traffic-7")
    assert body == {
        "id": "traffic-7",
        "inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2.0]}],
    }


def test_labels_go_to_the_named_port_of_pods_that_have_an_address():
    pods = [
        pod("a", "127.10.0.2", [{"name": "http", "containerPort": 8080}]),
        pod("b", None, [{"name": "http", "containerPort": 8080}]),  # not started yet
        pod("c", "127.10.0.4", [{"name": "metrics", "containerPort": 9090}]),
    ]
    assert feedback_addresses(pods, "http") == {"a": "127.10.0.2:8080"}


def test_owed_labels_are_taken_once_grouped_by_pod():
    feed = LabelFeed()
    feed.owe("a", "r1", 1)
    feed.owe("b", "r2", 0)
    feed.owe("a", "r3", 0)
    assert feed.take() == {"a": [("r1", 1), ("r3", 0)], "b": [("r2", 0)]}
    assert feed.take() == {}
