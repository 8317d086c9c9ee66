"""Throughput and memory of the local Kubernetes API, against stock kmock.

One command: `.venv/bin/python bench/apiserver/run.py`. Each server runs in its own
process on 127.0.0.1; this process is the load generator (aiohttp, keep-alive
connections), sending GET and JSON-merge-PATCH requests for 2,000 ConfigMaps. The
server's RSS is read after N and after 10N requests, once its bounded watch history
is full (which a warm-up guarantees), to show that serving requests does not grow it.

kmock is a runtime dependency of the project, so the peer needs no separate venv.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiohttp
import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
OBJECTS = 2000
PATH = "/api/v1/namespaces/default/configmaps"

KMOCK_SERVER = """
import asyncio, sys, kmock
async def main(port, objects):
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator, port=port):
        resource = kmock.resource('', 'v1', 'configmaps')
        emulator.resources[resource] = kmock.ResourceInfo(namespaced=True, kind='ConfigMap')
        for index in range(objects):
            name = f'cm-{index:04d}'
            emulator.objects[resource, 'default', name] = {
                'apiVersion': 'v1', 'kind': 'ConfigMap',
                'metadata': {'name': name, 'namespace': 'default'}, 'data': {'value': '0'},
            }
        print('ready', flush=True)
        await asyncio.Event().wait()
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str

    @property
    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def wait_until_up(url: str, path: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url + path) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not come up")
            await asyncio.sleep(0.1)


def start_ours(tmp: Path) -> Served:
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from driftline.cli import main; main()",
        "apiserver",
        "--port",
        str(port),
        "--kubeconfig",
        str(tmp / "kubeconfig"),
        "--no-crds",
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    served = Served(process, f"http://127.0.0.1:{port}")
    asyncio.run(wait_until_up(served.url, "/version", time.monotonic() + 60))
    return served


def start_kmock() -> Served:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", KMOCK_SERVER, str(port), str(OBJECTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise RuntimeError("kmock did not start")
    return Served(process, f"http://127.0.0.1:{port}")


async def create_objects(url: str) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:

        async def create(index: int) -> None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{index:04d}"},
                "data": {"value": "0"},
            }
            async with session.post(url + PATH, json=body) as response:
                if response.status != 201:
                    raise RuntimeError(
                        f"create answered {response.status}: {await response.text()}"
                    )

        for start in range(0, OBJECTS, 200):
            await asyncio.gather(*(create(i) for i in range(start, min(start + 200, OBJECTS))))


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """One request on a keep-alive connection; returns the status code (body read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def load(
    url: str, requests: int, concurrency: int, time_budget: float | None = None, seed: int = 0
) -> tuple[int, float, int]:
    """Send `requests` GET/PATCH requests (half each) over `concurrency` keep-alive connections.

    A minimal HTTP/1.1 client on asyncio streams: aiohttp's client costs more CPU than the
    server under test, and on a 2-core machine the load generator would be what is measured.
    Returns (completed, seconds, failures); stops early when `time_budget` runs out.
    """
    rng = random.Random(seed)
    host, port = url.removeprefix("http://").split(":")
    plan = []
    for _ in range(requests):
        path = f"{PATH}/cm-{rng.randrange(OBJECTS):04d}"
        if rng.random() < 0.5:
            body = f'{{"data":{{"value":"{rng.randrange(10**6, 10**7)}"}}}}'.encode()
            plan.append(
                f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        else:
            plan.append(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode()
            )
    position = failures = completed = 0
    started = time.perf_counter()
    deadline = None if time_budget is None else started + time_budget

    async def worker() -> None:
        nonlocal position, failures, completed
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while position < len(plan) and (deadline is None or time.perf_counter() < deadline):
                request = plan[position]
                position += 1
                failures += await _exchange(reader, writer, request) >= 400
                completed += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return completed, time.perf_counter() - started, failures


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--requests", type=int, default=5000, help="N: RSS is read after N and after 10N requests"
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--warmup",
        type=int,
        default=22000,
        help="requests before measuring (fills the bounded watch history)",
    )
    parser.add_argument(
        "--kmock-seconds", type=float, default=20.0, help="time budget for the stock kmock run"
    )
    args = parser.parse_args()
    rows: list[str] = []
    load_average = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        ours = start_ours(Path(tmp))
        try:
            asyncio.run(create_objects(ours.url))
            asyncio.run(load(ours.url, args.warmup, args.concurrency, seed=1))
            rss_start = ours.rss_mib
            done, seconds, failures = asyncio.run(
                load(ours.url, args.requests, args.concurrency, seed=2)
            )
            rss_n = ours.rss_mib
            done10, seconds10, failures10 = asyncio.run(
                load(ours.url, 9 * args.requests, args.concurrency, seed=3)
            )
            rss_10n = ours.rss_mib
        finally:
            ours.stop()
    rate, rate10 = done / seconds, done10 / seconds10
    rows.append(
        f"| driftline.apiserver | {done} | {rate:,.0f} | {done10} | {rate10:,.0f} | {failures + failures10} | {rss_start:.1f} | {rss_n:.1f} | {rss_10n:.1f} |"
    )

    peer = start_kmock()
    try:
        first, first_seconds, first_failures = asyncio.run(
            load(peer.url, 200, args.concurrency, time_budget=args.kmock_seconds, seed=2)
        )
        rss_k1 = peer.rss_mib
        later, later_seconds, later_failures = asyncio.run(
            load(peer.url, 100000, args.concurrency, time_budget=args.kmock_seconds, seed=3)
        )
        rss_k2 = peer.rss_mib
    finally:
        peer.stop()
    rows.append(
        f"| kmock {version('kmock')} KubernetesEmulator | {first} | {first / first_seconds:,.0f} | {later} (in {args.kmock_seconds:.0f} s) | "
        f"{later / later_seconds:,.0f} | {first_failures + later_failures} | - | {rss_k1:.1f} | {rss_k2:.1f} |"
    )

    print(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"Machine: {machine()}; 1-minute load average before the run: {load_average:.2f}")
    print(f"Versions: aiohttp {version('aiohttp')}, kmock {version('kmock')}")
    print(
        f"Workload: {OBJECTS} ConfigMaps, 50% GET / 50% JSON merge PATCH, {args.concurrency} keep-alive connections, client and server on 127.0.0.1 in separate processes"
    )
    print(f"Our server warmed up with {args.warmup} requests first; N = {args.requests}.")
    print()
    print(
        "| server | first run: requests | req/s | second run: requests | req/s | errors | RSS before (MiB) | RSS after first run | RSS after second run |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
