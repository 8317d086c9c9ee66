"""A lean HTTP/1.1 transport: asyncio protocol + httptools parser, no framework.

Why not a framework: at tens of thousands of small requests a second on two cores, the
per-request cost of ASGI scopes, middleware and response objects is the budget. This
layer parses with httptools (the parser uvicorn uses), hands complete requests to the
application and writes responses in request order (pipelining safe), keep-alive by
default. Bodies above the configured limit are discarded as they arrive and answered
with 413; ``Expect: 100-continue`` is honoured, so clients that ask first never send an
oversized body at all.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import deque
from typing import Any, cast

import httptools

from driftline_serving.server.app import Response, ServingApp, error_response
from driftline_serving.server.protocol import encode_error

log = logging.getLogger(__name__)

_REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Content",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
_WANTED_HEADERS = frozenset(
    {
        b"inference-header-content-length",
        b"expect",
        b"content-encoding",
        b"content-length",
        b"content-type",
    }
)
# Longer request targets are refused with 414; what was read of them is not kept.
MAX_URL_BYTES = 8192


def render_response(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    reason = _REASONS.get(response.status, b"Unknown")
    lines = [
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
        % (response.status, reason, response.content_type, len(response.body))
    ]
    for name, value in response.headers:
        lines.append(name + b": " + value + b"\r\n")
    lines.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
    if not head_only:
        lines.append(response.body)
    return b"".join(lines)


def decode_body(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """Undo gzip/deflate request compression (tritonclient can send either), bounded."""
    if encoding is None or encoding in (b"identity", b""):
        return body
    if encoding not in (b"gzip", b"deflate"):
        raise ValueError(f"unsupported content-encoding {encoding.decode(errors='replace')!r}")
    name = encoding.decode()
    decompressor = zlib.decompressobj(wbits=47)  # 32 + 15: zlib or gzip header, detected
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise ValueError(f"request body is not valid {name}: {error}") from None
    if len(data) > limit:
        raise OverflowError(f"decompressed request body is larger than {limit} bytes")
    if not decompressor.eof:
        # zlib hands back what it could decode without complaint: the end is checked here.
        raise ValueError(
            f"request body is not valid {name}: the compressed stream is truncated "
            f"({len(body)} bytes end before the stream does)"
        )
    if decompressor.unused_data:
        raise ValueError(
            f"request body is not valid {name}: {len(decompressor.unused_data)} bytes follow "
            "the end of the compressed stream"
        )
    return data


class ConnectionRegistry:
    """The open connections, so that a shutdown can close the idle ones."""

    def __init__(self) -> None:
        self.connections: set[HttpConnection] = set()
        self.idle_event = asyncio.Event()


class HttpConnection(asyncio.Protocol):
    def __init__(self, app: ServingApp, registry: ConnectionRegistry) -> None:
        self._app = app
        self._registry = registry
        self._limit = app.config.max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # Responses in request order: [rendered bytes or None while pending].
        self._slots: deque[list[Any]] = deque()
        self._closing = False
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._url_too_long = False
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._registry.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._registry.connections.discard(self)
        if not self._registry.connections:
            self._registry.idle_event.set()

    def pause_writing(self) -> None:
        # The client is not reading its responses: stop reading its requests.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as error:
            self._fail(400, f"malformed HTTP request: {error}")

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        if self._url_too_long:
            return
        if len(self._url) + len(url) > MAX_URL_BYTES:
            self._url_too_long = True
            self._url = self._url[:256]
            return
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in _WANTED_HEADERS:
            self._headers[lowered] = value

    def on_headers_complete(self) -> None:
        declared = self._headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._limit:
            self._too_large = True
        if self._headers.get(b"expect", b"").lower() == b"100-continue" and self._transport:
            if self._too_large:
                # Answer before the body is sent; the client then does not send it.
                self._respond_now(self._too_large_response(), keep_alive=False)
                self._closing = True
            else:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body_size += len(body)
        if self._body_size > self._limit:
            self._too_large = True
            self._body.clear()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        parser = self._parser
        method = parser.get_method().decode("ascii", errors="replace")
        keep_alive = parser.should_keep_alive() and not self._app.draining
        head_only = method == "HEAD"
        slot: list[Any] = [None, keep_alive, head_only]
        self._slots.append(slot)
        if self._too_large:
            self._app.metrics.request_refused("too_large")
            self._fill(slot, self._too_large_response())
            return
        if self._url_too_long:
            self._app.metrics.request_refused("too_large")
            self._fill(
                slot, error_response(414, f"request URL is longer than {MAX_URL_BYTES} bytes")
            )
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        encoding = self._headers.get(b"content-encoding")
        if encoding is not None:
            try:
                body = decode_body(body, encoding.lower(), self._limit)
            except OverflowError:
                self._app.metrics.request_refused("too_large")
                self._fill(slot, self._too_large_response())
                return
            except ValueError as error:
                self._app.metrics.request_refused("bad_request")
                self._fill(slot, error_response(400, str(error)))
                return
        try:
            self._app.handle(
                method,
                self._url.decode("latin-1"),
                self._headers.get(b"inference-header-content-length"),
                body,
                lambda response: self._fill(slot, response),
                self._headers.get(b"content-type"),
            )
        except Exception as error:  # a bug must cost one request, not the connection
            log.exception("unhandled error answering %s %r", method, self._url[:256])
            if slot[0] is None:
                self._app.metrics.request_refused("error")
                self._fill(slot, error_response(500, f"internal error: {error}"))

    # --- writing ------------------------------------------------------------------------

    def _too_large_response(self) -> Response:
        return error_response(413, f"request body is larger than the limit of {self._limit} bytes")

    def _fill(self, slot: list[Any], response: Response) -> None:
        slot[0] = render_response(response, slot[1], slot[2])
        self._flush()

    def _flush(self) -> None:
        slots = self._slots
        while slots and slots[0][0] is not None:
            data, keep_alive, _ = slots.popleft()
            transport = self._transport
            if transport is None:
                slots.clear()
                return
            transport.write(data)
            if not keep_alive:
                self._closing = True
                slots.clear()
                transport.close()
                return
        if not slots and self._app.draining:
            self.close_if_idle()

    def _respond_now(self, response: Response, keep_alive: bool) -> None:
        if self._transport is not None:
            self._transport.write(render_response(response, keep_alive))
            if not keep_alive:
                self._transport.close()

    def _fail(self, status: int, message: str) -> None:
        """A request we cannot even parse: answer it and close, as the stream is lost."""
        self._closing = True
        self._slots.clear()
        if self._transport is not None:
            self._transport.write(
                render_response(Response(status, encode_error(message)), keep_alive=False)
            )
            self._transport.close()

    def close_if_idle(self) -> None:
        if not self._slots and self._transport is not None:
            self._closing = True
            self._transport.close()

    @property
    def busy(self) -> bool:
        return bool(self._slots)
