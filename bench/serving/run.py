"""Serving benchmark: driftline-serve against KServe, MLServer and a bare endpoint.

One command (from the repository root):

    .venv/bin/python bench/serving/run.py [--duration 5] [--output FILE]

It creates the peers' virtual environments under .bench-venvs/ on first use, installs
``wrk`` with apt-get when it is missing (Debian/Ubuntu, as root), writes the ONNX MLP
(32 -> 256 -> 256 -> 3) once, starts all four servers on loopback one after the other
(measuring cold start: process start to a 200 from /v2/health/ready), then drives every
server with the same wrk load for each cell (batch 1 and 32, concurrency 1, 8, 64),
interleaving the servers within a cell so that load from other processes on the machine
falls on all of them alike. Per server it reports throughput, p50/p99 latency, server
CPU per request (psutil CPU time of the server's process tree / requests answered) and
peak resident memory of the process tree.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from venvs import REPO_ROOT, ensure_venv, installed_version, venv_python

from driftline_serving.examples.models import classifier_mlp, save

HERE = Path(__file__).resolve().parent
MODEL_NAME = "mlp"
BATCHES = (1, 32)
CONCURRENCIES = (1, 8, 64)
SERVERS = ("driftline", "bare", "kserve", "mlserver")
LABELS = {
    "driftline": "driftline-serve",
    "bare": "bare Starlette",
    "kserve": "KServe 0.21",
    "mlserver": "MLServer 1.7.1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("[bench] wrk not found: installing it with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: install it (Debian/Ubuntu: apt-get install wrk)")
    return found


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    cold_start_s: float = float("nan")
    rss_ready_mb: float = float("nan")
    peak_rss_mb: float = 0.0
    log_path: Path | None = None

    def tree(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total / 1e6

    def start(self, log_dir: Path, deadline_s: float = 120.0) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{self.port}/v2/health/ready"
        while time.perf_counter() - started < deadline_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        self.cold_start_s = time.perf_counter() - started
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.005)
        else:
            raise RuntimeError(f"{self.name} not ready after {deadline_s}s")
        self.rss_ready_mb = self.rss_mb()
        self.peak_rss_mb = max(self.peak_rss_mb, self.rss_ready_mb)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextlib.contextmanager
def memory_sampler(server: Server) -> Iterator[None]:
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            server.peak_rss_mb = max(server.peak_rss_mb, server.rss_mb())
            stop.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def mlserver_layout(root: Path, model_path: Path, port: int) -> Path:
    """MLServer's model repository: settings.json plus one folder per model."""
    repository = root / "mlserver"
    model_dir = repository / MODEL_NAME
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "peers" / "mlserver_runtime.py", model_dir / "mlserver_runtime.py")
    (repository / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
            }
        )
    )
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_runtime.OnnxRuntime",
                "parameters": {"uri": str(model_path)},
            }
        )
    )
    return repository


def driftline_serve_arguments(model_path: Path, sha256: str, port: int) -> list[str]:
    """driftline-serve's options for the benchmark's model on 127.0.0.1:port."""
    return [
        "--model-name",
        MODEL_NAME,
        "--model-uri",
        str(model_path),
        "--sha256",
        sha256,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def build_servers(work: Path, model_path: Path, sha256: str) -> dict[str, Server]:
    ports = {name: free_port() for name in SERVERS}
    repository = mlserver_layout(work, model_path, ports["mlserver"])
    return {
        "driftline": Server(
            "driftline",
            [
                str(REPO_ROOT / ".venv" / "bin" / "driftline-serve"),
                *driftline_serve_arguments(model_path, sha256, ports["driftline"]),
            ],
            ports["driftline"],
            REPO_ROOT,
        ),
        "bare": Server(
            "bare",
            [
                str(venv_python("bare")),
                str(HERE / "peers" / "bare_peer.py"),
                MODEL_NAME,
                str(model_path),
                str(ports["bare"]),
            ],
            ports["bare"],
            work,
        ),
        "kserve": Server(
            "kserve",
            [
                str(venv_python("kserve")),
                str(HERE / "peers" / "kserve_peer.py"),
                "--model_name",
                MODEL_NAME,
                "--model_path",
                str(model_path),
                "--http_port",
                str(ports["kserve"]),
                "--grpc_port",
                str(free_port()),
            ],
            ports["kserve"],
            work,
        ),
        "mlserver": Server(
            "mlserver",
            [str(venv_python("mlserver").parent / "mlserver"), "start", str(repository)],
            ports["mlserver"],
            repository,
        ),
    }


def request_body(rows: int) -> bytes:
    features = np.random.default_rng(rows).standard_normal((rows, 32)).astype(np.float32)
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, 32],
                    "data": [round(float(value), 5) for value in features.ravel()],
                }
            ]
        }
    ).encode()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_latency(text: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


@dataclass
class Cell:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    requests: int
    errors: int


def run_wrk(wrk: str, server: Server, body_file: Path, concurrency: int, duration_s: float) -> Cell:
    url = f"http://127.0.0.1:{server.port}/v2/models/{MODEL_NAME}/infer"
    threads = min(2, concurrency)
    cpu_before = server.cpu_seconds()
    with memory_sampler(server):
        result = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{duration_s:g}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(HERE / "post.lua"),
                url,
            ],
            env={**os.environ, "BODY_FILE": str(body_file)},
            capture_output=True,
            text=True,
            check=True,
        )
    cpu = server.cpu_seconds() - cpu_before
    text = result.stdout
    requests_match = re.search(r"(\d+) requests in", text)
    requests = int(requests_match.group(1)) if requests_match else 0
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(value) for value in socket_errors.groups())
    return Cell(
        rps=float(rps_match.group(1)) if rps_match else 0.0,
        p50_ms=parse_latency(text, "50"),
        p99_ms=parse_latency(text, "99"),
        cpu_ms_per_request=cpu / requests * 1000 if requests else float("nan"),
        requests=requests,
        errors=errors,
    )


def check_answers(server: Server, body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/v2/models/{MODEL_NAME}/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            document = json.loads(response.read())
    except urllib.error.HTTPError as error:
        log = server.log_path.read_text()[-3000:] if server.log_path else ""
        raise RuntimeError(
            f"{server.name} answered {error.code}: {error.read()!r}\n{log}"
        ) from None
    shape = document["outputs"][0]["shape"]
    if shape != [json.loads(body)["inputs"][0]["shape"][0], 3]:
        raise RuntimeError(f"{server.name} answered shape {shape}")


def machine_description() -> str:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )


def versions() -> dict[str, str]:
    import onnxruntime

    from driftline_serving.server import __version__

    return {
        "driftline-serve": f"{__version__} (onnxruntime {onnxruntime.__version__})",
        "bare": "starlette "
        + installed_version("bare", "starlette")
        + ", uvicorn "
        + installed_version("bare", "uvicorn")
        + ", onnxruntime "
        + installed_version("bare", "onnxruntime"),
        "kserve": "kserve "
        + installed_version("kserve", "kserve")
        + ", onnxruntime "
        + installed_version("kserve", "onnxruntime"),
        "mlserver": "mlserver "
        + installed_version("mlserver", "mlserver")
        + ", uvloop "
        + installed_version("mlserver", "uvloop")
        + ", onnxruntime "
        + installed_version("mlserver", "onnxruntime"),
    }


def render(
    results: dict[tuple[int, int], dict[str, Cell]],
    servers: dict[str, Server],
    duration_s: float,
    names: tuple[str, ...],
) -> str:
    lines = [
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"Machine: {machine_description()}",
        f"Load: wrk, {duration_s:g} s per cell, servers interleaved within each cell",
        "",
        "| batch | conc | "
        + " | ".join(f"{LABELS[name]} req/s | p50 ms | p99 ms | CPU ms/req" for name in names)
        + " |",
        "|---|---|" + "---|---|---|---|" * len(names),
    ]
    for (batch, concurrency), cells in sorted(results.items()):
        row = [str(batch), str(concurrency)]
        for name in names:
            cell = cells[name]
            flag = f" ({cell.errors} errors)" if cell.errors else ""
            row += [
                f"{cell.rps:,.0f}{flag}",
                f"{cell.p50_ms:.2f}",
                f"{cell.p99_ms:.2f}",
                f"{cell.cpu_ms_per_request:.3f}",
            ]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "| server | cold start s (median) | RSS when ready MB | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for name in names:
        server = servers[name]
        lines.append(
            f"| {LABELS[name]} | {server.cold_start_s:.2f} | {server.rss_ready_mb:.0f} | {server.peak_rss_mb:.0f} |"
        )
    if {"driftline", "bare", "kserve"} <= set(names) and (1, 64) in results:
        ours, bare, kserve = (results[(1, 64)][name] for name in ("driftline", "bare", "kserve"))
        lines += [
            "",
            "Targets at concurrency 64, batch 1 (same run):",
            f"- throughput vs KServe: {ours.rps / kserve.rps:.1f}x (target >= 8x)",
            f"- throughput vs bare endpoint: {ours.rps / bare.rps:.2f}x (target >= 1.2x)",
            f"- p99: {ours.p99_ms:.2f} ms vs bare {bare.p99_ms:.2f} ms (target: no higher)",
            f"- server CPU per request: {ours.cpu_ms_per_request:.3f} ms (target <= 0.15 ms)",
            f"- ready after start: {servers['driftline'].cold_start_s:.2f} s (target <= 0.5 s)",
            f"- RSS with the MLP loaded: {servers['driftline'].rss_ready_mb:.0f} MB when ready, "
            f"{servers['driftline'].peak_rss_mb:.0f} MB peak (target < 100 MB)",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--cold-starts", type=int, default=3, help="launches per server")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "bench" / "results" / "serving.md"
    )
    args = parser.parse_args()
    names = tuple(name for name in SERVERS if name in args.servers.split(","))

    wrk = ensure_wrk()
    for name in names:
        if name != "driftline":
            ensure_venv(name)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as scratch:
        work = Path(scratch)
        model_path = work / "mlp.onnx"
        sha256 = save(classifier_mlp(), model_path)
        bodies = {rows: work / f"body-{rows}.json" for rows in BATCHES}
        for rows, path in bodies.items():
            path.write_bytes(request_body(rows))
        servers = {
            name: server
            for name, server in build_servers(work, model_path, sha256).items()
            if name in names
        }
        results: dict[tuple[int, int], dict[str, Cell]] = {}
        try:
            for name in names:
                # Cold start: the median of several launches, as the machine is shared.
                launches = []
                for _ in range(args.cold_starts - 1):
                    servers[name].start(work)
                    launches.append(servers[name].cold_start_s)
                    servers[name].stop()
                servers[name].start(work)
                launches.append(servers[name].cold_start_s)
                servers[name].cold_start_s = statistics.median(launches)
                for rows in BATCHES:
                    check_answers(servers[name], bodies[rows].read_bytes())
                print(
                    f"[bench] {LABELS[name]} ready in {servers[name].cold_start_s:.2f} s, "
                    f"{servers[name].rss_ready_mb:.0f} MB",
                    flush=True,
                )
            for name in names:  # warm every server's code paths before measuring
                run_wrk(wrk, servers[name], bodies[1], 8, 1)
            for rows in BATCHES:
                for concurrency in CONCURRENCIES:
                    cells = {}
                    for name in names:
                        cells[name] = run_wrk(
                            wrk, servers[name], bodies[rows], concurrency, args.duration
                        )
                        cell = cells[name]
                        print(
                            f"[bench] batch {rows:>2} conc {concurrency:>2} {LABELS[name]:>16}: "
                            f"{cell.rps:9,.0f} req/s  p50 {cell.p50_ms:7.2f} ms  p99 {cell.p99_ms:7.2f} ms  "
                            f"CPU {cell.cpu_ms_per_request:.3f} ms/req  errors {cell.errors}",
                            flush=True,
                        )
                    results[(rows, concurrency)] = cells
        finally:
            for server in servers.values():
                server.stop()
        report = render(results, servers, args.duration, names)
        report += "\n\nVersions:\n" + "\n".join(
            f"- {name}: {version}"
            for name, version in versions().items()
            if name.split("-")[0] in names
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")
        print("\n" + report)
        print(f"\n[bench] written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
