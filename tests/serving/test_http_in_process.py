"""The HTTP transport and the observer hook, with the server in the test's event loop."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import pytest

from driftline_serving.server.config import ServerConfig
from driftline_serving.server.observers import InferenceRecord
from driftline_serving.server.serve import RunningServer, start_server

INFER = "/v2/models/mlp/infer"


def body(rows: int = 1, request_id: str | None = None) -> bytes:
    document: dict = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [rows, 32], "data": [0.5] * (32 * rows)}
        ]
    }
    if request_id is not None:
        document["id"] = request_id
    return json.dumps(document).encode()


class Recorder:
    def __init__(self) -> None:
        self.records: list[InferenceRecord] = []
        self.arrived = asyncio.Event()

    def wants(self) -> bool:
        return True

    def observe(self, record: InferenceRecord) -> None:
        self.records.append(record)
        self.arrived.set()


class Exploding:
    def wants(self) -> bool:
        return True

    def observe(self, record: InferenceRecord) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(mlp_file, tmp_path, recorder) -> AsyncIterator[RunningServer]:
    config = ServerConfig(
        model_name="mlp",
        model_uri=str(mlp_file.path),
        sha256=mlp_file.sha256,
        host="127.0.0.1",
        port=0,
        intra_op_threads=1,
        max_body_bytes=4096,
        artifact_dir=tmp_path,
    )
    running = await start_server(config, observers=[Exploding(), recorder])
    await running.load_task
    assert running.app.ready
    yield running
    await running.stop()


async def raw_exchange(
    port: int, payload: bytes, responses: int = 1
) -> list[tuple[str, dict, bytes]]:
    """Send bytes as they are, read back ``responses`` HTTP responses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    answers = []
    for _ in range(responses):
        status_line = (await reader.readline()).decode().strip()
        headers: dict[str, str] = {}
        while (line := (await reader.readline()).decode().strip()) != "":
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        content = await reader.readexactly(int(headers.get("content-length", "0")))
        answers.append((status_line, headers, content))
    writer.close()
    return answers


def post(payload: bytes, extra: str = "") -> bytes:
    return (
        f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}\r\n{extra}\r\n".encode()
        + payload
    )


async def test_pipelined_requests_are_answered_in_order(server):
    payload = post(body(2, "first")) + post(b"{oops") + post(body(1, "third"))

    answers = await raw_exchange(server.port, payload, responses=3)

    assert [status for status, _, _ in answers] == [
        "HTTP/1.1 200 OK",
        "HTTP/1.1 400 Bad Request",
        "HTTP/1.1 200 OK",
    ]
    assert json.loads(answers[0][2])["id"] == "first"
    assert json.loads(answers[2][2])["id"] == "third"


async def test_expect_continue_is_answered_and_oversized_bodies_are_refused_before_sending(server):
    small = body()
    (continue_and_ok,) = await raw_exchange(
        server.port,
        f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(small)}\r\nExpect: 100-continue\r\n\r\n".encode()
        + small,
        responses=1,
    )
    assert continue_and_ok[0] == "HTTP/1.1 100 Continue"

    (refused,) = await raw_exchange(
        server.port,
        f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n".encode(),
    )
    assert refused[0] == "HTTP/1.1 413 Content Too Large"
    assert json.loads(refused[2]) == {
        "error": "request body is larger than the limit of 4096 bytes"
    }


async def test_chunked_body_over_the_limit_is_a_413(server):
    chunk = b"x" * 3000
    payload = (
        f"POST {INFER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2
        + b"0\r\n\r\n"
    )
    (answer,) = await raw_exchange(server.port, payload)
    assert answer[0] == "HTTP/1.1 413 Content Too Large"


async def test_malformed_http_gets_a_400_and_the_server_keeps_serving(server):
    (answer,) = await raw_exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer[0] == "HTTP/1.1 400 Bad Request"
    assert json.loads(answer[2])["error"].startswith("malformed HTTP request")
    ((status, _, _),) = await raw_exchange(server.port, post(body()))
    assert status == "HTTP/1.1 200 OK"


async def test_gzip_request_bodies_are_accepted_and_bad_encodings_refused(server):
    compressed = gzip.compress(body(3))
    ((status, _, content),) = await raw_exchange(
        server.port, post(compressed, "Content-Encoding: gzip\r\n")
    )
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(content)["outputs"][0]["shape"] == [3, 3]

    ((status, _, content),) = await raw_exchange(
        server.port, post(b"garbage", "Content-Encoding: gzip\r\n")
    )
    assert status == "HTTP/1.1 400 Bad Request"
    assert "not valid gzip" in json.loads(content)["error"]

    ((status, _, content),) = await raw_exchange(
        server.port, post(body(), "Content-Encoding: br\r\n")
    )
    assert status == "HTTP/1.1 400 Bad Request"
    assert json.loads(content)["error"] == "unsupported content-encoding 'br'"

    bomb = gzip.compress(b"{" + b" " * 100_000 + b"}")
    ((status, _, _),) = await raw_exchange(server.port, post(bomb, "Content-Encoding: gzip\r\n"))
    assert status == "HTTP/1.1 413 Content Too Large"


async def test_observers_get_each_inference_after_the_response_and_failures_are_contained(
    server, recorder
):
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{server.port}{INFER}", data=body(2, "abc")
        ) as response:
            assert response.status == 200
            answer = await response.json()
        async with session.post(f"http://127.0.0.1:{server.port}{INFER}", data=body(1)) as response:
            assert response.status == 200

    await asyncio.wait_for(recorder.arrived.wait(), timeout=10)
    first, second = recorder.records
    assert first.request_id == "abc"
    assert (first.model_name, first.model_version) == ("mlp", "1")
    np.testing.assert_array_equal(first.inputs["input"], np.full((2, 32), 0.5, dtype=np.float32))
    np.testing.assert_allclose(
        first.outputs["probabilities"].ravel(), answer["outputs"][0]["data"], rtol=1e-6
    )
    assert first.duration_s > 0
    # none when the client sent none: the sampler names it off the request path
    assert second.request_id is None


async def test_head_and_health_endpoints(server):
    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}"
        async with session.head(f"{base}/v2/health/ready") as response:
            assert response.status == 200
        async with session.get(f"{base}/v2/health/live") as response:
            assert await response.json() == {"live": True}
        async with session.get(f"{base}/v2/models/mlp/versions/2/ready") as response:
            assert response.status == 404


async def test_stop_refuses_new_connections_and_reports_not_ready(server):
    port = server.port
    await server.stop()
    assert not server.app.ready
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


@pytest.mark.parametrize("encoding", ["deflate", "gzip"])
async def test_a_truncated_compressed_body_is_a_400_that_says_truncated(server, encoding):
    whole = zlib.compress(body(2)) if encoding == "deflate" else gzip.compress(body(2))
    ((status, _, content),) = await raw_exchange(
        server.port, post(whole[: len(whole) // 2], f"Content-Encoding: {encoding}\r\n")
    )
    assert status == "HTTP/1.1 400 Bad Request"
    assert json.loads(content)["error"].startswith(
        f"request body is not valid {encoding}: the compressed stream is truncated"
    )
    ((status, _, content),) = await raw_exchange(
        server.port, post(whole + b"tail", f"Content-Encoding: {encoding}\r\n")
    )
    assert status == "HTTP/1.1 400 Bad Request"
    assert "4 bytes follow the end of the compressed stream" in json.loads(content)["error"]


async def test_errors_never_echo_a_long_url_and_overlong_urls_are_a_414(server):
    long_path = INFER + "x" * 6000
    ((status, _, content),) = await raw_exchange(
        server.port, f"PUT {long_path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
    )
    assert status == "HTTP/1.1 404 Not Found"
    assert len(content) < 400
    assert f"... ({len(long_path)} characters)" in json.loads(content)["error"]

    query = "?q=" + "y" * 6000
    ((status, _, content),) = await raw_exchange(
        server.port, f"GET {INFER}{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status == "HTTP/1.1 405 Method Not Allowed"
    assert json.loads(content)["error"] == f"GET is not allowed on {INFER}; use POST"

    huge = "/v2/models/mlp/infer?" + "z" * (8 * 1024 * 1024)
    ((status, _, content),) = await raw_exchange(
        server.port, f"GET {huge} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status == "HTTP/1.1 414 URI Too Long"
    assert json.loads(content) == {"error": "request URL is longer than 8192 bytes"}
    ((status, _, _),) = await raw_exchange(server.port, post(body()))
    assert status == "HTTP/1.1 200 OK"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16"],
)
async def test_a_body_labelled_as_something_else_is_a_415(server, content_type):
    ((status, _, content),) = await raw_exchange(
        server.port, post(body(), f"Content-Type: {content_type}\r\n")
    )
    assert status == "HTTP/1.1 415 Unsupported Media Type"
    assert "not accepted" in json.loads(content)["error"]
    for accepted in ("application/json", "application/json; charset=utf-8", ""):
        extra = f"Content-Type: {accepted}\r\n" if accepted else ""
        ((status, _, _),) = await raw_exchange(server.port, post(body(), extra))
        assert status == "HTTP/1.1 200 OK"
