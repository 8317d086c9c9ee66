"""Sampling overhead: driftline-serve's throughput and p99 with drift sampling at 0%,
10% and 100%, side by side, with a real drift evaluator receiving the samples.

One command (from the repository root):

    .venv/bin/python bench/serving/sampling.py [--duration 1] [--rounds 40] [--instances 2]

It starts the local Kubernetes API (`driftline apiserver`) with Driftline's CRDs and a
DriftPolicy, builds a reference profile for the MLP's 32 inputs, and for each setting
starts `--instances` servers and, except for "off", a `driftline-evaluator` beside each
on a Unix socket, as in a pod. wrk drives batch-1 requests at concurrency 64 (and 8).
Every pod is measured once per round, in a fresh random order, so that other load on
the machine falls on all settings alike. On a shared virtual machine one server's
throughput over one second varies by 13-23% (coefficient of variation) from one second
to the next, and its CPU time per request as much (so it is not only stolen time):
hence many short measurements rather than a few long ones. Identical server processes
can also differ by several percent, hence more than one per setting. The table shows each setting's median, its
change against "off" in mean throughput, and a 95% bootstrap interval of that change.
"0%" (the sampler wired in, sampling nothing) is the control: its interval shows the
noise. Target: at most 5% throughput loss at 100% sampling.

`bench/serving/sampling_cost.py` measures the same settings in executed instructions,
which do not vary from run to run.

With `--pin` (the default on 2 or more CPUs) every server runs on CPU 0 with one
onnxruntime thread, and wrk and the sidecars on the other CPUs: the server's cost is
then measured without it competing with the load generator or its own sidecar, as in a
pod whose sidecar has a CPU request of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kubernetes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # the serving benchmark's harness: wrk driver, server process wrapper
    Cell,
    Server,
    driftline_serve_arguments,
    ensure_wrk,
    free_port,
    machine_description,
    request_body,
    run_wrk,
)
from venvs import REPO_ROOT

from driftline_serving.drift import Schema, build_profile, save_profile
from driftline_serving.examples.models import MLP_INPUTS, classifier_mlp, save

SETTINGS = {"off": None, "0%": 0.0, "10%": 0.1, "100%": 1.0}
CONCURRENCIES = (64, 8)  # batch 1: where per-request overhead shows most
BIN = REPO_ROOT / ".venv" / "bin"
OTHER_CPUS = ",".join(str(c) for c in range(1, max(os.cpu_count() or 2, 2)))


def start_apiserver(work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = work / "kubeconfig"
    process = subprocess.Popen(
        [
            str(BIN / "driftline"),
            "apiserver",
            "--port",
            str(free_port()),
            "--kubeconfig",
            str(kubeconfig),
            "--crds",
            str(REPO_ROOT / "crds"),
        ],
        stdout=(work / "apiserver.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not kubeconfig.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((work / "apiserver.log").read_text())
        time.sleep(0.05)
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    kubernetes.client.CustomObjectsApi(client).create_namespaced_custom_object(
        "driftline.io",
        "v1alpha1",
        "default",
        "driftpolicies",
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "mlp-drift"},
            "spec": {"targetRef": {"name": "mlp"}, "window": {"size": 10000, "intervalSeconds": 5}},
        },
    )
    return process, kubeconfig


def write_profile(work: Path) -> tuple[Path, str]:
    names = [f"x{i}" for i in range(MLP_INPUTS)]
    reference = np.random.default_rng(0).standard_normal((20_000, MLP_INPUTS))
    profile = build_profile(
        Schema.of([(n, "numeric") for n in names]),
        [{n: reference[:, i] for i, n in enumerate(names)}],
    )
    path = work / "reference.dlprofile"
    return path, save_profile(profile, path)


class Pod:
    """A server, and for sampled settings the evaluator sidecar beside it."""

    def __init__(
        self,
        label: str,
        instance: int,
        rate: float | None,
        work: Path,
        model: tuple[Path, str],
        profile: tuple[Path, str],
        kubeconfig: Path,
        pin: bool,
    ) -> None:
        self.label = label
        name = f"{label.strip('%')}-{instance}"
        server_cpu = ["taskset", "-c", "0"] if pin else []
        sidecar_cpus = ["taskset", "-c", OTHER_CPUS] if pin else []
        socket_address = f"unix://{work}/{name}.sock"
        flags = []
        self.evaluator: subprocess.Popen[bytes] | None = None
        if rate is not None:
            flags = ["--drift-sample-socket", socket_address, "--drift-sampling-rate", str(rate)]
            self.evaluator = subprocess.Popen(
                [
                    *sidecar_cpus,
                    str(BIN / "driftline-evaluator"),
                    "--policy",
                    "mlp-drift",
                    "--namespace",
                    "default",
                    "--pod",
                    f"mlp-{name}",
                    "--profile-uri",
                    str(profile[0]),
                    "--profile-sha256",
                    profile[1],
                    "--listen",
                    socket_address,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                    "--kubeconfig",
                    str(kubeconfig),
                ],
                stdout=(work / f"evaluator-{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 60
            while not Path(socket_address.removeprefix("unix://")).exists():
                if self.evaluator.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"evaluator for {label} did not start")
                time.sleep(0.05)
        port = free_port()
        self.server = Server(
            f"driftline-{name}",
            [
                *server_cpu,
                str(BIN / "driftline-serve"),
                *(["--intra-op-threads", "1"] if pin else []),
                *driftline_serve_arguments(model[0], model[1], port),
                *flags,
            ],
            port,
            REPO_ROOT,
        )
        self.server.start(work)

    def evaluator_cpu_s(self) -> float:
        if self.evaluator is None:
            return 0.0
        import psutil

        times = psutil.Process(self.evaluator.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.server.stop()
        if self.evaluator is not None:
            self.evaluator.terminate()
            self.evaluator.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds per setting")
    parser.add_argument(
        "--instances",
        type=int,
        default=2,
        help="server processes per setting",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "bench" / "results" / "sampling.md"
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2,
        help="servers on CPU 0, load generator and sidecars on the others",
    )
    args = parser.parse_args()
    args.machine = machine_description()  # before pinning narrows what nproc sees
    if args.pin:
        os.sched_setaffinity(0, {int(c) for c in OTHER_CPUS.split(",")})  # wrk inherits it
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="driftline-sampling-") as scratch:
        work = Path(scratch)
        model_path = work / "mlp.onnx"
        model = (model_path, save(classifier_mlp(), model_path))
        profile = write_profile(work)
        body = work / "body-1.json"
        body.write_bytes(request_body(1))
        apiserver, kubeconfig = start_apiserver(work)
        pods: dict[tuple[str, int], Pod] = {}
        results: dict[tuple[int, str], list[Cell]] = {}
        evaluator_cpu: dict[str, float] = {}
        order = random.Random(0)
        try:
            for instance in range(args.instances):
                for label, rate in SETTINGS.items():
                    pods[(label, instance)] = Pod(
                        label, instance, rate, work, model, profile, kubeconfig, args.pin
                    )
            for pod in pods.values():
                run_wrk(wrk, pod.server, body, 8, 1)  # warm-up
            for concurrency in CONCURRENCIES:
                for round_index in range(args.rounds):
                    # every pod once per round, in a fresh random order: a slow spell of
                    # the machine then falls on no setting in particular
                    keys = list(pods)
                    order.shuffle(keys)
                    for label, instance in keys:
                        pod = pods[(label, instance)]
                        before = pod.evaluator_cpu_s()
                        cell = run_wrk(wrk, pod.server, body, concurrency, args.duration)
                        evaluator_cpu[label] = (
                            evaluator_cpu.get(label, 0.0) + pod.evaluator_cpu_s() - before
                        )
                        results.setdefault((concurrency, label), []).append(cell)
                        print(
                            f"[sampling] conc {concurrency} round {round_index} "
                            f"{label:>4} #{instance}: "
                            f"{cell.rps:8,.0f} req/s p99 {cell.p99_ms:6.2f} ms "
                            f"CPU {cell.cpu_ms_per_request:.3f} ms/req errors {cell.errors}",
                            flush=True,
                        )
        finally:
            for pod in pods.values():
                pod.stop()
            apiserver.terminate()
            apiserver.wait(timeout=20)
    report = render(results, evaluator_cpu, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report + "\n")
    print("\n" + report)
    return 0


def ratio_interval(cells: list[Cell], base: list[Cell], draws: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of mean req/s over the off setting's mean req/s."""
    rng = np.random.default_rng(0)
    ours = np.array([c.rps for c in cells])
    theirs = np.array([c.rps for c in base])
    ratios = [
        rng.choice(ours, ours.size).mean() / rng.choice(theirs, theirs.size).mean()
        for _ in range(draws)
    ]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low) - 1.0, float(high) - 1.0


def render(
    results: dict[tuple[int, str], list[Cell]],
    evaluator_cpu: dict[str, float],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"Machine: {args.machine}, load average at end {os.getloadavg()}",
        f"Load: wrk, batch 1, {args.duration:g} s per measurement; {args.instances} server "
        f"processes per setting x {args.rounds} rounds, every pod once per round in random order",
        "Pinned: servers on CPU 0 (1 onnxruntime thread), wrk and sidecars on the others"
        if args.pin
        else "Not pinned: servers, wrk and sidecars share all CPUs",
        "",
        "| concurrency | sampling | req/s (median) | vs off (means) | 95% interval | p50 ms "
        "| p99 ms | server CPU ms/req | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for concurrency in CONCURRENCIES:
        base = results[(concurrency, "off")]
        base_mean = statistics.mean(c.rps for c in base)
        for label in SETTINGS:
            cells = results[(concurrency, label)]
            low, high = ratio_interval(cells, base)
            change = statistics.mean(c.rps for c in cells) / base_mean - 1
            lines.append(
                f"| {concurrency} | {label} | {statistics.median(c.rps for c in cells):,.0f} | "
                f"{change:+.1%} | {low:+.1%} to {high:+.1%} | "
                f"{statistics.median(c.p50_ms for c in cells):.2f} | "
                f"{statistics.median(c.p99_ms for c in cells):.2f} | "
                f"{statistics.median(c.cpu_ms_per_request for c in cells):.3f} | "
                f"{sum(c.errors for c in cells)} |"
            )
    lines += [
        "",
        "Evaluator sidecar CPU over all measurements (seconds): "
        + ", ".join(f"{label} {evaluator_cpu.get(label, 0.0):.1f}" for label in SETTINGS),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
