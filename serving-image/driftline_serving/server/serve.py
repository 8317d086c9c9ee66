"""Run the server: listen, load the model, serve, and drain gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence

from driftline_serving.server.app import ServingApp
from driftline_serving.server.config import ServerConfig
from driftline_serving.server.http import ConnectionRegistry, HttpConnection
from driftline_serving.server.observers import InferenceObserver

log = logging.getLogger(__name__)


class RunningServer:
    """A listening server bound to a loop; ``stop()`` drains it."""

    def __init__(
        self,
        app: ServingApp,
        server: asyncio.Server,
        registry: ConnectionRegistry,
        load_task: asyncio.Future[None],
    ) -> None:
        self.app = app
        self._server = server
        self._registry = registry
        self.load_task = load_task
        self.stopped = asyncio.Event()

    @property
    def port(self) -> int:
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the drain timeout), close."""
        if self.app.draining:
            await self.stopped.wait()
            return
        started = time.perf_counter()
        self.app.start_draining()
        self._server.close()
        for connection in list(self._registry.connections):
            connection.close_if_idle()
        deadline = started + self.app.config.drain_timeout_s
        while self._registry.connections and time.perf_counter() < deadline:
            self._registry.idle_event.clear()
            if not self._registry.connections:
                break
            try:
                await asyncio.wait_for(
                    self._registry.idle_event.wait(), max(deadline - time.perf_counter(), 0.0)
                )
            except TimeoutError:
                break
        left = len(self._registry.connections)
        if left:
            log.warning("drain timeout: closing %d connections with requests in flight", left)
        self._server.close()
        self.app.close()
        log.info("drained in %.0f ms", (time.perf_counter() - started) * 1000)
        self.stopped.set()


async def start_server(
    config: ServerConfig,
    observers: Sequence[InferenceObserver] = (),
    *,
    sock: socket.socket | None = None,
) -> RunningServer:
    """Listen first (liveness answers at once), then load the model in the background."""
    loop = asyncio.get_running_loop()
    app = ServingApp(config, observers)
    registry = ConnectionRegistry()

    def factory() -> HttpConnection:
        return HttpConnection(app, registry)

    if sock is not None:
        server = await loop.create_server(factory, sock=sock, backlog=2048)
    else:
        server = await loop.create_server(
            factory, config.host, config.port, reuse_address=True, backlog=2048
        )
    running = RunningServer(app, server, registry, asyncio.ensure_future(app.load()))
    log.info("listening on %s:%d", config.host, running.port)
    return running


async def serve_until_signalled(
    config: ServerConfig,
    observers: Sequence[InferenceObserver] = (),
    on_listening: Callable[[RunningServer], None] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    running = await start_server(config, observers)
    if on_listening is not None:
        on_listening(running)
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await stop_requested.wait()
    log.info("shutdown requested: draining")
    await running.stop()
