"""Endpoint selection, route weights and scrape targets (pure); a forwarder on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from driftline.sandbox.routing import (
    Backend,
    Forwarder,
    Pick,
    choose_weighted,
    listen_port,
    route_backends,
    service_endpoints,
)
from driftline.sandbox.runtime import scrape_targets
from tests.support import free_port

SERVICE = {
    "metadata": {"name": "churn", "namespace": "ml"},
    "spec": {"selector": {"app": "churn"}, "ports": [{"port": 80, "targetPort": "http"}]},
}


def pod(
    ip: str,
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    namespace: str = "ml",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"pod-{ip}",
            "namespace": namespace,
            "labels": labels if labels is not None else {"app": "churn", "track": "stable"},
            "annotations": annotations or {},
        },
        "spec": {"containers": [{"name": "s", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_a_service_forwards_to_the_ready_pods_it_selects_in_its_namespace():
    pods = [
        pod("127.10.0.3"),
        pod("127.10.0.2"),
        pod("127.10.0.4", ready=False),
        pod("127.10.0.5", labels={"app": "other"}),
        pod("127.10.0.6", namespace="elsewhere"),
    ]
    port = SERVICE["spec"]["ports"][0]
    assert service_endpoints(SERVICE, port, pods) == [("127.10.0.2", 8080), ("127.10.0.3", 8080)]
    numeric = {"port": 80, "targetPort": 9000}
    assert service_endpoints(SERVICE, numeric, pods)[0] == ("127.10.0.2", 9000)
    no_selector = {**SERVICE, "spec": {"ports": [port]}}
    assert service_endpoints(no_selector, port, pods) == []


def test_route_backends_default_weight_is_one():
    route = {
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "stable", "port": 80, "weight": 75},
                        {"name": "canary", "port": 80},
                    ]
                }
            ]
        }
    }
    assert route_backends(route) == [Backend("stable", 80, 75), Backend("canary", 80, 1)]
    assert route_backends({"spec": {}}) == []


def test_weighted_choice_splits_by_weight_and_never_picks_weight_zero():
    options = [("stable", 75), ("canary", 25), ("off", 0)]
    draws = [i / 1000 for i in range(1000)]
    counts = Counter(choose_weighted(options, d) for d in draws)
    assert counts == {"stable": 750, "canary": 250}
    assert choose_weighted([("a", 0)], 0.5) is None
    assert choose_weighted([], 0.5) is None
    assert choose_weighted([("a", 0), ("b", 3)], 0.999) == "b"


def test_privileged_ports_move_up_by_8000():
    assert listen_port(80) == 8080
    assert listen_port(8443) == 8443


def test_scrape_targets_are_ready_pods_that_ask_for_it():
    ask = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}
    pods = [pod("127.10.0.2", annotations=ask), pod("127.10.0.3", annotations=ask, ready=False)]
    pods.append(pod("127.10.0.4"))
    (group,) = scrape_targets(pods)
    assert group["targets"] == ["127.10.0.2:8080"]
    assert group["labels"]["__metrics_path__"] == "/metrics"
    assert group["labels"]["pod"] == "pod-127.10.0.2"


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"echo:" + await reader.read(100))
    await writer.drain()
    writer.close()


async def through(pick: Pick, host: str) -> bytes:
    """Send b"hi" through a Forwarder on `host` that picks with `pick`; what comes back
    (nothing when it closed the connection)."""
    forwarder = Forwarder(host, 0, pick)
    await forwarder.start()
    assert forwarder.server is not None
    port = forwarder.server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"hi")
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(100), 10)
    except ConnectionResetError:  # closed with our bytes unread: a reset, as a refusal
        answer = b""
    writer.close()
    await forwarder.stop()
    return answer


@pytest.mark.parametrize("target_ready", [True, False])
async def test_a_forwarder_relays_bytes_or_closes_when_there_is_no_endpoint(target_ready):
    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    live = ("127.0.0.1", upstream.sockets[0].getsockname()[1])
    answer = await through(lambda _refused: live if target_ready else None, "127.20.99.2")
    assert answer == (b"echo:hi" if target_ready else b"")
    upstream.close()


async def test_a_connection_an_endpoint_refuses_goes_to_another():
    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    live = ("127.0.0.1", upstream.sockets[0].getsockname()[1])
    leaving = ("127.0.0.1", free_port())  # a pod that has stopped listening
    asked: list[frozenset[tuple[str, int]]] = []

    def pick(refused: frozenset[tuple[str, int]]) -> tuple[str, int] | None:
        asked.append(refused)
        return leaving if leaving not in refused else live

    assert await through(pick, "127.20.99.3") == b"echo:hi"
    assert asked == [frozenset(), frozenset({leaving})]
    upstream.close()
