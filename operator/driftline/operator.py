"""Run the Driftline operator: ``python -m driftline.operator``.

Watches ModelVersions, ModelDeployments and DriftPolicies (in the given namespaces, or the
whole cluster), serves kopf's liveness probe and Prometheus metrics, and stops on SIGTERM.
Credentials: in-cluster service account, else the kubeconfig ($KUBECONFIG).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m driftline.operator", description="Run the Driftline operator."
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable); the whole cluster when none is given",
    )
    parser.add_argument(
        "--liveness-port", type=int, default=8081, help="kopf's /healthz port (0: none)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=9102, help="Prometheus /metrics port (0: none)"
    )
    parser.add_argument(
        "--bind", default="0.0.0.0", help="address for the liveness and metrics endpoints"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _record_factory_with_object(factory: Any) -> Any:
    """kopf puts the object it logs about in record.k8s_ref; show it as " [namespace/name]"."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = factory(*args, **kwargs)
        record.k8s_object = ""
        return record

    return make


class _ObjectFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        reference = getattr(record, "k8s_ref", None)
        if isinstance(reference, dict) and reference.get("name"):
            record.k8s_object = f" [{reference.get('namespace', '')}/{reference['name']}]"
        return True


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.setLogRecordFactory(_record_factory_with_object(logging.getLogRecordFactory()))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s%(k8s_object)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ObjectFilter())
    import kopf
    from prometheus_client import start_http_server

    import driftline.handlers.register  # noqa: F401  (registers the handlers)

    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind)
    liveness = f"http://{args.bind}:{args.liveness_port}/healthz" if args.liveness_port else None
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
