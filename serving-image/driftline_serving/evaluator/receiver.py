"""The sidecar's end of the sample channel: frames in, messages out.

Frames that do not decode are counted and the connection is closed (after a framing
error the stream cannot be trusted); the server's shipper reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from driftline_serving.sampling.codec import (
    PREFIX_SIZE,
    CodecError,
    Message,
    decode,
    frame_length,
    header_length,
)

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 256 * 1024 * 1024


@dataclass
class ReceiverStats:
    frames: int = 0
    bad_frames: int = 0
    connections: int = 0


class SampleReceiver:
    def __init__(self, address: str, deliver: Callable[[Message], None]) -> None:
        self.address = address
        self.deliver = deliver
        self.stats = ReceiverStats()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.address.startswith("unix://"):
            path = self.address.removeprefix("unix://")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a socket left by an earlier container of this pod
            self._server = await asyncio.start_unix_server(self._serve, path=path)
        elif self.address.startswith("tcp://"):
            host, _, port = self.address.removeprefix("tcp://").rpartition(":")
            self._server = await asyncio.start_server(self._serve, host=host, port=int(port))
        else:
            raise ValueError(
                f"listen address must be unix:///path or tcp://host:port, got {self.address!r}"
            )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            while True:
                try:
                    prefix = await reader.readexactly(PREFIX_SIZE)
                except asyncio.IncompleteReadError:
                    return  # clean close between frames
                try:
                    header = await reader.readexactly(header_length(prefix))
                    total = frame_length(prefix + header)
                    if total > MAX_FRAME_BYTES:
                        raise CodecError(f"frame of {total} bytes is over the limit")
                    rest = await reader.readexactly(total - PREFIX_SIZE - len(header))
                    message = decode(prefix + header + rest)
                except (CodecError, asyncio.IncompleteReadError) as error:
                    self.stats.bad_frames += 1
                    log.warning("dropping connection after a bad sample frame: %s", error)
                    return
                self.stats.frames += 1
                self.deliver(message)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
