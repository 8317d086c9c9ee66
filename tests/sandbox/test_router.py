"""The router against the local API: Services answer on loopback and follow readiness;
an HTTPRoute follows its weights (the Gateway API's own HTTPRoute schema)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from driftline.sandbox.kube import Kube
from driftline.sandbox.routing import Router
from driftline.sandbox.slots import AddressBlock
from tests.apiserver_support import running_apiserver
from tests.support import wait_until_async

SCHEMA = Path(__file__).parents[1] / "fixtures" / "gateway-api" / "httproute-v1.schema.json"
TRACKS = ("stable", "canary")


def pod_ip(block: AddressBlock, track: str) -> str:
    """The stand-in pod's address: from the test's own block, as a kubelet's would be."""
    return block.pod(TRACKS.index(track))


def httproute_crd() -> dict[str, Any]:
    """The HTTPRoute CRD with the Gateway API's v1 schema, its CEL rules left out (they
    check routes users write and need CEL libraries beyond the local API's)."""

    def without_rules(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: without_rules(v) for k, v in node.items() if k != "x-kubernetes-validations"}
        if isinstance(node, list):
            return [without_rules(v) for v in node]
        return node

    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {"kind": "HTTPRoute", "listKind": "HTTPRouteList", "plural": "httproutes"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": without_rules(json.loads(SCHEMA.read_text()))},
                }
            ],
        },
    }


async def answer_with(name: str, host: str) -> asyncio.Server:
    """A one-line HTTP server standing in for a pod's container."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = name.encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, 8080)


async def get(address: str) -> str | None:
    host, port = address.split(":")
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    except (OSError, TimeoutError):
        return None
    return response.split(b"\r\n\r\n", 1)[1].decode() if b"\r\n\r\n" in response else None


async def set_ready(kube: Kube, block: AddressBlock, track: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "podIP": pod_ip(block, track),
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    await kube.patch("v1", "pods", "ml", f"pod-{track}", {"status": status}, subresource="status")


@pytest.fixture
async def routed(block: AddressBlock) -> AsyncIterator[tuple[Kube, Router]]:
    with running_apiserver() as api:
        kube = Kube(api.url)
        await kube.create(
            "apiextensions.k8s.io/v1", "customresourcedefinitions", None, httproute_crd()
        )
        await kube.create("v1", "namespaces", None, {"metadata": {"name": "ml"}})
        servers = [await answer_with(track, pod_ip(block, track)) for track in TRACKS]
        for track in TRACKS:
            pod = {
                "metadata": {"name": f"pod-{track}", "labels": {"app": "churn", "track": track}},
                "spec": {
                    "containers": [
                        {
                            "name": "s",
                            "image": "i",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ]
                },
            }
            await kube.create("v1", "pods", "ml", pod)
            await set_ready(kube, block, track, True)
        for name, selector in (
            ("churn", {"app": "churn"}),
            ("churn-stable", {"track": "stable"}),
            ("churn-canary", {"track": "canary"}),
        ):
            service = {
                "metadata": {"name": name},
                "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": "http"}]},
            }
            await kube.create("v1", "services", "ml", service)
        router = Router(kube, block)
        task = asyncio.create_task(router.run())
        try:
            yield kube, router
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for server in servers:
                server.close()
            await kube.close()


async def answers(address: str, count: int = 30) -> set[str | None]:
    return {await get(address) for _ in range(count)}


async def test_a_service_answers_on_its_own_address_from_ready_pods_only(routed):
    kube, router = routed
    address = await wait_until_async(
        lambda: (router.addresses.get(("Service", "ml", "churn")) or [None])[0], 30, what="address"
    )
    assert address == f"{router.block.service(0)}:8080"  # port 80 -> 8080

    async def both() -> bool:
        return await answers(address) == {"stable", "canary"}

    await wait_for(both, "both pods answering")
    await set_ready(kube, router.block, "canary", False)

    async def stable_only() -> bool:
        return await answers(address) == {"stable"}

    await wait_for(stable_only, "only the ready pod answering")


async def test_an_httproute_splits_by_its_weights(routed):
    kube, router = routed
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "churn"},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "churn-stable", "port": 80, "weight": 100},
                        {"name": "churn-canary", "port": 80, "weight": 0},
                    ]
                }
            ],
        },
    }
    await kube.create("gateway.networking.k8s.io/v1", "httproutes", "ml", route)
    address = await wait_until_async(
        lambda: (router.addresses.get(("HTTPRoute", "ml", "churn")) or [None])[0], 30, what="route"
    )
    assert address == f"{router.block.route(0)}:8080"

    async def only(track: str) -> bool:
        return await answers(address) == {track}

    await wait_for(lambda: only("stable"), "weight 100 to stable")
    rules = route["spec"]["rules"]
    rules[0]["backendRefs"][0]["weight"], rules[0]["backendRefs"][1]["weight"] = 0, 100
    await kube.patch(
        "gateway.networking.k8s.io/v1", "httproutes", "ml", "churn", {"spec": {"rules": rules}}
    )
    await wait_for(lambda: only("canary"), "weight 100 to canary")
    rules[0]["backendRefs"][0]["weight"] = rules[0]["backendRefs"][1]["weight"] = 50
    await kube.patch(
        "gateway.networking.k8s.io/v1", "httproutes", "ml", "churn", {"spec": {"rules": rules}}
    )

    async def both() -> bool:
        return await answers(address) == {"stable", "canary"}

    await wait_for(both, "50/50")


async def wait_for(check: Any, what: str, timeout_s: float = 30.0) -> None:
    """Until the async `check` holds; each round is a fresh batch of requests."""
    await wait_until_async(check, timeout_s, what=what, interval_s=0.05)
