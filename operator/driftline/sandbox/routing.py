"""Services and HTTPRoutes in the sandbox: each answers on its own loopback address and
forwards TCP connections to ready endpoints (kube-proxy's and a gateway's roles).

Each Service gets an address of the sandbox's block (slots.py: 127.S.128.2, ...) and
listens on its own ports; each HTTPRoute gets one from 127.S.192.2 on port 8080 (ports
under 1024 need privileges, so a Service's port 80 answers on 8080 too) and splits
connections between its backend Services by their weights. Balancing is per connection,
as kube-proxy's is. The choices (endpoints, weights) are pure functions below.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from driftline.sandbox.kube import Kube, KubeError, wake_on_changes
from driftline.sandbox.podstatus import is_pod_ready
from driftline.sandbox.slots import AddressBlock

log = logging.getLogger("driftline.sandbox.routing")
ROUTE_PORT = 80
GATEWAY_API = "gateway.networking.k8s.io/v1"

Endpoint = tuple[str, int]


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def target_port(pod: Mapping[str, Any], target: Any) -> int | None:
    """A Service's targetPort on one pod: a number, or the name of a container port."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def service_endpoints(
    service: Mapping[str, Any], port: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> list[Endpoint]:
    """Ready pods the Service selects, in the same namespace, at the port's target."""
    meta = service["metadata"]
    selector = (service.get("spec") or {}).get("selector") or {}
    found = []
    for pod in pods:
        pod_meta = pod.get("metadata") or {}
        if pod_meta.get("namespace") != meta.get("namespace") or pod_meta.get("deletionTimestamp"):
            continue
        if not selects(selector, pod_meta.get("labels") or {}) or not is_pod_ready(dict(pod)):
            continue
        number = target_port(pod, port.get("targetPort", port.get("port")))
        ip = (pod.get("status") or {}).get("podIP")
        if number is not None and ip:
            found.append((ip, number))
    return sorted(found)


@dataclass(frozen=True)
class Backend:
    service: str
    port: int
    weight: int


def route_backends(route: Mapping[str, Any]) -> list[Backend]:
    """The backends of an HTTPRoute's first rule (the operator renders one), weight 1 by
    default as the Gateway API says."""
    rules = (route.get("spec") or {}).get("rules") or []
    if not rules:
        return []
    return [
        Backend(ref["name"], int(ref.get("port", 80)), int(ref.get("weight", 1)))
        for ref in rules[0].get("backendRefs") or []
        if ref.get("kind", "Service") == "Service"
    ]


def choose_weighted(options: Sequence[tuple[Any, int]], draw: float) -> Any | None:
    """The option whose share of the total weight contains `draw` (0 <= draw < 1);
    options with weight 0 are never chosen; None when nothing has weight."""
    total = sum(max(0, w) for _, w in options)
    if total <= 0:
        return None
    point = draw * total
    for option, weight in options:
        if weight <= 0:
            continue
        if point < weight:
            return option
        point -= weight
    return next(o for o, w in reversed(options) if w > 0)


def listen_port(port: int) -> int:
    """Ports under 1024 need privileges: the sandbox answers port 80 on 8080, and so on."""
    return port if port >= 1024 else port + 8000


# A pick: an endpoint that is not one of those given (they refused the connection).
Pick = Callable[[frozenset[Endpoint]], Endpoint | None]
CONNECT_ATTEMPTS = 3


class Forwarder:
    """One listening address:port; each connection goes where `pick` says. A connection
    an endpoint refuses is tried on another (a gateway's retry on connect failure): a pod
    being deleted stops listening a moment before the router sees the deletion."""

    def __init__(self, host: str, port: int, pick: Pick) -> None:
        self.host, self.port, self.pick = host, port, pick
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refused: frozenset[Endpoint] = frozenset()
        for _ in range(CONNECT_ATTEMPTS):
            endpoint = self.pick(refused)
            if endpoint is None:
                break
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*endpoint)
            except OSError:
                refused |= {endpoint}
                continue
            await asyncio.gather(
                _pipe(reader, upstream_writer),
                _pipe(upstream_reader, writer),
                return_exceptions=True,
            )
            return
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Router:
    def __init__(self, kube: Kube, block: AddressBlock, rng: random.Random | None = None) -> None:
        self.kube = kube
        self.block = block  # where the Services' and HTTPRoutes' addresses come from
        self.rng = rng or random.Random()
        # (kind, namespace, name) -> "host:port" of each port it answers on
        self.addresses: dict[tuple[str, str, str], list[str]] = {}
        self._forwarders: dict[tuple[str, str, str], list[Forwarder]] = {}
        self._endpoints: dict[tuple[str, str, int], list[Endpoint]] = {}
        self._routes: dict[tuple[str, str], list[Backend]] = {}
        self._next = {"Service": 0, "HTTPRoute": 0}
        self._wake = asyncio.Event()
        self.on_change: Callable[[], None] = lambda: None

    async def run(self) -> None:
        kinds = [("v1", "services"), ("v1", "pods")]
        watcher = asyncio.create_task(wake_on_changes(self.kube, kinds, self._wake.set))
        try:
            while True:
                try:
                    await self.sync()
                except (KubeError, aiohttp.ClientError) as error:
                    log.warning("router sync failed: %s", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                self._wake.clear()
        finally:
            watcher.cancel()
            for forwarders in self._forwarders.values():
                for forwarder in forwarders:
                    await forwarder.stop()

    def _live_endpoints(
        self, namespace: str, name: str, port: int, refused: frozenset[Endpoint]
    ) -> list[Endpoint]:
        return [e for e in self._endpoints.get((namespace, name, port)) or [] if e not in refused]

    def _pick_service(
        self, namespace: str, name: str, port: int, refused: frozenset[Endpoint] = frozenset()
    ) -> Endpoint | None:
        endpoints = self._live_endpoints(namespace, name, port, refused)
        return self.rng.choice(endpoints) if endpoints else None

    def _pick_route(
        self, namespace: str, name: str, refused: frozenset[Endpoint] = frozenset()
    ) -> Endpoint | None:
        backends = self._routes.get((namespace, name)) or []
        # only backends with a ready endpoint take traffic, as a gateway's health checks do
        live = [
            (b, b.weight)
            for b in backends
            if self._live_endpoints(namespace, b.service, b.port, refused)
        ]
        chosen = choose_weighted(live, self.rng.random())
        if chosen is None:
            return None
        return self._pick_service(namespace, chosen.service, chosen.port, refused)

    def _address(self, kind: str, index: int) -> str:
        return self.block.service(index) if kind == "Service" else self.block.route(index)

    async def sync(self) -> None:
        services = await self.kube.list("v1", "services")
        pods = await self.kube.list("v1", "pods")
        try:
            routes = await self.kube.list(GATEWAY_API, "httproutes")
        except KubeError:
            routes = []  # the Gateway API is not installed
        endpoints: dict[tuple[str, str, int], list[Endpoint]] = {}
        for service in services:
            meta = service["metadata"]
            for port in (service.get("spec") or {}).get("ports") or []:
                endpoints[(meta["namespace"], meta["name"], int(port["port"]))] = service_endpoints(
                    service, port, pods
                )
        self._endpoints = endpoints
        self._routes = {
            (r["metadata"]["namespace"], r["metadata"]["name"]): route_backends(r) for r in routes
        }
        wanted: dict[tuple[str, str, str], list[tuple[int, Pick]]] = {}
        for service in services:
            meta = service["metadata"]
            ns, name = meta["namespace"], meta["name"]
            numbers = [int(p["port"]) for p in (service.get("spec") or {}).get("ports") or []]
            wanted[("Service", ns, name)] = [
                (number, functools.partial(self._pick_service, ns, name, number))
                for number in numbers
            ]
        for ns, name in self._routes:
            wanted[("HTTPRoute", ns, name)] = [
                (ROUTE_PORT, functools.partial(self._pick_route, ns, name))
            ]
        changed = False
        for key in set(self._forwarders) - set(wanted):
            for forwarder in self._forwarders.pop(key):
                await forwarder.stop()
            self.addresses.pop(key, None)
            changed = True
        for key, listeners in wanted.items():
            if key in self._forwarders:
                continue
            host = self._address(key[0], self._next[key[0]])
            self._next[key[0]] += 1
            forwarders = [Forwarder(host, listen_port(n), pick) for n, pick in listeners]
            for forwarder in forwarders:
                await forwarder.start()
            self._forwarders[key] = forwarders
            self.addresses[key] = [f"{host}:{f.port}" for f in forwarders]
            changed = True
        if changed:
            self.on_change()
