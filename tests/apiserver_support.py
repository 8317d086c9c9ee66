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

from driftline.apiserver.access import AccessControl
from driftline.apiserver.bootstrap import load_crds, write_kubeconfig
from driftline.apiserver.cluster import Cluster
from driftline.apiserver.controllers import Controllers
from driftline.apiserver.faults import FaultInjector
from driftline.apiserver.server import ApiHandler, LocalApiServer
from driftline.apiserver.store import Obj
from driftline.apiserver.tokens import parse_token_file

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

    @property
    def access(self) -> AccessControl | None:
        return self.handler.access

    @property
    def admin_token(self) -> str | None:
        """The bearer token of the admin (group system:masters); None without RBAC."""
        return self.access.admin_token if self.access is not None else None

    def api_client(self, token: str | None = None) -> Any:
        """A `kubernetes.client.ApiClient` for this server: as the admin, or with `token`."""
        import kubernetes

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        bearer = token or self.admin_token
        if bearer:
            configuration.api_key = {"authorization": f"Bearer {bearer}"}
        return kubernetes.client.ApiClient(configuration)

    def service_account_token(self, namespace: str, name: str) -> str:
        """A token for an existing ServiceAccount, through the TokenRequest API (as the admin)."""
        import kubernetes

        core = kubernetes.client.CoreV1Api(self.api_client())
        answer = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": 3600}}
        )
        token: str = answer.status.token
        return token

    def write_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        """A kubeconfig that authenticates with `token`."""
        return write_kubeconfig(path, self.url, token, namespace)

    def denials(self) -> list[str]:
        """kube-apiserver's message of every request RBAC denied so far."""
        return list(self.access.denials) if self.access is not None else []


@contextlib.contextmanager
def running_apiserver(
    *,
    port: int | None = None,
    kubeconfig_path: Path | None = None,
    crds: Path | None = None,
    bookmark_interval: float = 60.0,
    authorization: str | None = None,
    token_file: Path | None = None,
    authorization_log: Path | None = None,
) -> Iterator[RunningApiServer]:
    """Start the local API on 127.0.0.1 in a thread; stop it on exit.

    `authorization="RBAC"` authenticates every request by bearer token (the static tokens
    of `token_file`, in kube-apiserver's --token-auth-file format, the admin token, or a
    ServiceAccount token from the TokenRequest API) and authorizes it by RBAC; the
    kubeconfig written and `api_client()` then use the admin token."""
    if authorization not in (None, "AlwaysAllow", "RBAC"):
        raise ValueError(f"authorization must be 'RBAC' or 'AlwaysAllow', not {authorization!r}")
    if authorization != "RBAC" and (token_file is not None or authorization_log is not None):
        raise ValueError("token_file and authorization_log need authorization='RBAC'")
    tokens = parse_token_file(token_file.read_text(), str(token_file)) if token_file else {}
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[LocalApiServer] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            handler = ApiHandler(bookmark_interval=bookmark_interval)
            if authorization == "RBAC":
                handler.access = AccessControl(handler.cluster, tokens, authorization_log)
            async with LocalApiServer(handler, port=port) as server:
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
            access = server.handler.access
            write_kubeconfig(kubeconfig_path, server.url, access.admin_token if access else None)
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
