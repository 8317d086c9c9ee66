"""`driftline-evaluator`: the drift sidecar's entry point.

Every option can also come from the environment: the operator renders the sidecar with
DRIFTLINE_* variables (the pod's name and namespace from the downward API).

A reference profile that is missing or cannot be loaded does not stop it: it keeps
running, reports `NotEvaluating` with the reason in the DriftPolicy's status and retries
the load with backoff, so drift watching never takes the serving pod down.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from driftline_serving.evaluator.app import EvaluatorService, EvaluatorSettings
from driftline_serving.evaluator.kube import KubernetesPolicyApi, api_client
from driftline_serving.evaluator.reference import Backoff, load_reference

log = logging.getLogger("driftline.evaluator")


def build_parser(environ: dict[str, str]) -> argparse.ArgumentParser:
    def env(name: str, default: str | None = None) -> str | None:
        return environ.get(name, default)

    parser = argparse.ArgumentParser(prog="driftline-evaluator", description=__doc__)
    parser.add_argument("--policy", default=env("DRIFTLINE_POLICY_NAME"), help="DriftPolicy name.")
    parser.add_argument(
        "--namespace",
        default=env("DRIFTLINE_POLICY_NAMESPACE"),
        help="Its namespace.",
    )
    parser.add_argument(
        "--pod", default=env("DRIFTLINE_POD_NAME"), help="This pod's name (report key)."
    )
    parser.add_argument(
        "--model-version", default=env("DRIFTLINE_MODEL_VERSION", ""), help="ModelVersion served."
    )
    parser.add_argument(
        "--profile-uri", default=env("DRIFTLINE_REFERENCE_URI"), help="Reference profile URI."
    )
    parser.add_argument(
        "--profile-sha256", default=env("DRIFTLINE_REFERENCE_SHA256"), help="Its sha256."
    )
    parser.add_argument(
        "--listen",
        default=env("DRIFTLINE_DRIFT_SAMPLE_SOCKET", "unix:///var/run/driftline/samples.sock"),
        help="Where the server sends samples: unix:///path or tcp://host:port.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("DRIFTLINE_LISTEN_PORT", "9090") or 9090),
        help="HTTP port for /metrics, /report and /report.json.",
    )
    parser.add_argument("--host", default=env("DRIFTLINE_EVALUATOR_HOST", "0.0.0.0"))
    parser.add_argument(
        "--kubeconfig", default=env("KUBECONFIG"), help="Outside a pod: kubeconfig."
    )
    parser.add_argument(
        "--baseline-metrics",
        default=env("DRIFTLINE_BASELINE_METRICS", "{}"),
        help="JSON of the ModelVersion's offline metrics, for performance drift.",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="Override the policy's evaluation interval in seconds (tests, demos).",
    )
    parser.add_argument("--cache-dir", default=env("DRIFTLINE_ARTIFACT_DIR", tempfile.gettempdir()))
    parser.add_argument(
        "--reference-retry-seconds",
        type=float,
        default=float(env("DRIFTLINE_REFERENCE_RETRY_SECONDS", "5") or 5),
        help="First wait before loading the reference profile again after a failure; "
        "it doubles on each failure.",
    )
    parser.add_argument(
        "--reference-retry-max-seconds",
        type=float,
        default=float(env("DRIFTLINE_REFERENCE_RETRY_MAX_SECONDS", "300") or 300),
        help="Longest wait between attempts to load the reference profile.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser(dict(os.environ)).parse_args(argv)
    # Without these it cannot report anywhere. A missing reference profile is reported.
    missing = [n for n in ("policy", "namespace", "pod") if not getattr(args, n)]
    if missing:
        print(
            f"driftline-evaluator: missing {', '.join('--' + m.replace('_', '-') for m in missing)}",
            file=sys.stderr,
        )
        return 2
    try:
        baseline = {str(k): float(v) for k, v in json.loads(args.baseline_metrics).items()}
    except (ValueError, AttributeError) as error:
        print(
            f"driftline-evaluator: --baseline-metrics is not a JSON object of numbers: {error}",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.reference_retry_seconds <= args.reference_retry_max_seconds:
        print(
            "driftline-evaluator: --reference-retry-seconds must be positive and at most "
            "--reference-retry-max-seconds",
            file=sys.stderr,
        )
        return 2
    api = KubernetesPolicyApi(api_client(args.kubeconfig), args.namespace, args.policy)
    settings = EvaluatorSettings(
        pod=args.pod,
        model_version=args.model_version,
        listen=args.listen,
        http_host=args.host,
        http_port=args.port,
        interval_override_s=args.interval,
        reference_retry=Backoff(args.reference_retry_seconds, args.reference_retry_max_seconds),
    )
    load = functools.partial(
        load_reference, args.profile_uri, args.profile_sha256, Path(args.cache_dir)
    )
    service = EvaluatorService(settings, load, api, baseline)
    asyncio.run(_serve(service))
    return 0


async def _serve(service: EvaluatorService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    log.info("evaluating samples from %s for %s", service.settings.listen, service.settings.pod)
    await stop.wait()
    await service.stop()


if __name__ == "__main__":
    sys.exit(main())
