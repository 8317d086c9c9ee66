"""Run the local API for tests: a context manager and a pytest fixture.

Test-only (it needs pytest), so it lives under tests/ rather than in the product.

The server runs on its own event loop in a thread, so synchronous clients (the
`kubernetes` package, kubectl in a subprocess) and kopf in another thread can all reach it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from driftline.apiserver.bootstrap import load_crds, write_kubeconfig
from driftline.apiserver.cluster import Cluster
from driftline.apiserver.controllers import Controllers
from driftline.apiserver.faults import FaultInjector
from driftline.apiserver.server import ApiHandler, LocalApiServer
from driftline.apiserver.store import Obj

T = TypeVar("T")


class RunningApiServer:
    """A local API server on a background thread, and handles to steer it from a test."""

    def __init__(
        self, server: LocalApiServer, loop: asyncio.AbstractEventLoop, kubeconfig_path: Path | None
    ) -> None:
        self.server = server
        self.loop = loop
        self.kubeconfig_path = kubeconfig_path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def cluster(self) -> Cluster:
        return self.server.cluster

    @property
    def faults(self) -> FaultInjector:
        return self.server.faults

    @property
    def controllers(self) -> Controllers:
        return self.server.controllers

    @property
    def handler(self) -> ApiHandler:
        return self.server.handler

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a function on the server's loop (where the cluster's state lives)."""

        async def run() -> T:
            return function(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def load_crds(self, directory: Path) -> list[str]:
        return self.call(load_crds, self.cluster, directory)

    def create(
        self, group: str, version: str, plural: str, namespace: str | None, body: Obj
    ) -> Obj:
        return self.call(
            lambda: self.cluster.create(
                self.cluster.resource(group, version, plural), namespace, body
            )
        )

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` configured for this server."""
        import kubernetes

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)


@contextlib.contextmanager
def running_apiserver(
    *,
    port: int | None = None,
    kubeconfig_path: Path | None = None,
    crds: Path | None = None,
    bookmark_interval: float = 60.0,
) -> Iterator[RunningApiServer]:
    """Start the local API on 127.0.0.1 in a thread; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[LocalApiServer] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with LocalApiServer(
                ApiHandler(bookmark_interval=bookmark_interval), port=port
            ) as server:
                if crds is not None:
                    load_crds(server.cluster, crds)
                ready.set_result(server)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="driftline-apiserver", daemon=True
    )
    thread.start()
    try:
        server = ready.result(timeout=30)
        if kubeconfig_path is not None:
            write_kubeconfig(kubeconfig_path, server.url)
        yield RunningApiServer(server, loop, kubeconfig_path)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[RunningApiServer]:
    """A fresh local Kubernetes API for one test, with a kubeconfig in its tmp_path."""
    with running_apiserver(kubeconfig_path=tmp_path / "kubeconfig") as running:
        yield running
