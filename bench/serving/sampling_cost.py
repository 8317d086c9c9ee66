"""Sampling overhead in executed instructions: what drift sampling at 0%, 10% and 100%
adds to each request the server answers, counted by valgrind's callgrind.

One command (from the repository root; installs valgrind with apt-get if missing):

    .venv/bin/python bench/serving/sampling_cost.py [--seconds 20]

Throughput on a shared virtual machine varies by up to 15% between two identical server
processes (see sampling.py), which hides an effect of a few percent. Instruction counts
do not vary: each setting's server runs under callgrind, pinned to CPU 0, while wrk
sends batch-1 requests at concurrency 8 (`--connections`) from CPU 1; counting covers
every thread of the server (event loop, onnxruntime, the sampler's shipper) from after
a warm-up to the end of the measured load, and is divided by the requests answered
meanwhile. Batches form as under real load, so concurrency changes the cost per request.

The sampled rows go to a null sink (a socket that reads and discards): the sidecar's
own work is not the server's. Under callgrind the server answers about a hundredth of
its normal rate, so the shipper's flush interval is stretched (`--flush-ms`, default
5 s) to ship frames of the size they have at full speed (about 500 rows at 10,000
requests/s every 50 ms); the table reports the rows per frame that resulted.
Instructions are not time: cache misses and lock hand-offs are not in them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # the serving benchmark's harness
    HERE,
    MODEL_NAME,
    driftline_serve_arguments,
    ensure_wrk,
    free_port,
    machine_description,
    request_body,
)
from venvs import REPO_ROOT

from driftline_serving.examples.models import classifier_mlp, save

SETTINGS = {"off": None, "0%": 0.0, "10%": 0.1, "100%": 1.0}
BIN = REPO_ROOT / ".venv" / "bin"


def ensure_valgrind() -> str:
    found = shutil.which("valgrind")
    if found and shutil.which("callgrind_control"):
        return found
    print("[bench] valgrind not found: installing it with apt-get", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], check=True)
    return shutil.which("valgrind") or "valgrind"


class NullSink:
    """A Unix socket that accepts the sampler's connection and discards what it sends,
    counting bytes and frames (a frame starts with the magic DLS1)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                while chunk := connection.recv(1 << 20):
                    self.bytes += len(chunk)

    def close(self) -> None:
        self.listener.close()


def wrk_requests(wrk: str, port: int, body: Path, seconds: float, connections: int) -> int:
    completed = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "-s",
            str(HERE / "post.lua"),
            f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer",
        ],
        env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True,
        text=True,
        check=True,
    )
    for line in completed.stdout.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise RuntimeError(f"no request count in wrk's output:\n{completed.stdout}")


def batch_totals(port: int) -> tuple[float, float]:
    """(requests, batches) the server has run so far, from its batch-size histogram."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        text = response.read().decode()
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in totals:
            # e.g. driftline_batch_size_requests_sum{model="mlp"} 1234.0
            if line.startswith(f"driftline_batch_size_requests_{kind}{{"):
                totals[kind] = float(line.split()[-1])
    return totals["sum"], totals["count"]


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise RuntimeError("server not ready under valgrind after 600 s")


def measure(
    label: str,
    rate: float | None,
    work: Path,
    model: tuple[Path, str],
    body: Path,
    args: argparse.Namespace,
    wrk: str,
) -> dict[str, float]:
    name = label.strip("%")
    out = work / f"callgrind-{name}.out"
    port = free_port()
    flags: list[str] = []
    sink = None
    if rate is not None:
        sink = NullSink(work / f"{name}.sock")
        flags = [
            "--drift-sample-socket",
            f"unix://{sink.path}",
            "--drift-sampling-rate",
            str(rate),
            "--drift-flush-ms",
            str(args.flush_ms),
        ]
    log = work / f"server-{name}.log"
    server = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            args.valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            str(BIN / "python"),
            str(BIN / "driftline-serve"),
            "--intra-op-threads",
            "1",
            *driftline_serve_arguments(model[0], model[1], port),
            *flags,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(port, server, log)
        wrk_requests(wrk, port, body, 3, args.connections)  # warm-up, not counted
        batched_before = batch_totals(port)
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True)
        requests = wrk_requests(wrk, port, body, args.seconds, args.connections)
        shipped_before = sink.bytes if sink else 0
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True)
        shipped = shipped_before
        # read after the dump: the scrape is not in the counted instructions
        batched_after = batch_totals(port)
    finally:
        server.terminate()
        server.wait(timeout=120)
        if sink is not None:
            sink.close()
    dumps = sorted(work.glob(f"callgrind-{name}.out.*"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {label}: {log.read_text()[-2000:]}")
    instructions = 0
    for line in dumps[0].read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            instructions = int(line.split()[1])
    flushes = max(args.seconds * 1000.0 / args.flush_ms, 1.0)
    sampled = requests * (rate or 0.0)
    return {
        "requests": requests,
        "instructions": instructions,
        "per_request": instructions / requests,
        "rows_per_frame": sampled / flushes if rate else 0.0,
        "shipped_kb": shipped / 1024,
        "requests_per_batch": (batched_after[0] - batched_before[0])
        / max(batched_after[1] - batched_before[1], 1.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured load per setting")
    parser.add_argument(
        "--flush-ms", type=float, default=5000.0, help="the shipper's interval under callgrind"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk's concurrency")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "bench" / "results" / "sampling_cost.md"
    )
    args = parser.parse_args()
    args.machine = machine_description()
    args.valgrind = ensure_valgrind()
    wrk = ensure_wrk()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="driftline-sampling-cost-") as scratch:
        work = Path(scratch)
        model_path = work / "mlp.onnx"
        model = (model_path, save(classifier_mlp(), model_path))
        body = work / "body-1.json"
        body.write_bytes(request_body(1))
        for label, rate in SETTINGS.items():
            results[label] = measure(label, rate, work, model, body, args, wrk)
            print(f"[sampling-cost] {label}: {results[label]}", flush=True)
    base = results["off"]["per_request"]
    lines = [
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {args.machine}",
        f"callgrind, server on CPU 0, wrk -c{args.connections} batch 1 for {args.seconds:g} s per setting, "
        f"flush interval {args.flush_ms:g} ms, null sink",
        "",
        "| sampling | requests | instructions / request | vs off | rows per frame "
        "| requests per batch |",
        "|---|---|---|---|---|---|",
    ]
    for label, result in results.items():
        lines.append(
            f"| {label} | {result['requests']:,.0f} | {result['per_request']:,.0f} | "
            f"{result['per_request'] / base - 1:+.1%} | {result['rows_per_frame']:,.0f} | "
            f"{result['requests_per_batch']:.1f} |"
        )
    report = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report + "\n")
    print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
