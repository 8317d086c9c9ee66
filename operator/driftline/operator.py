"""Run the Driftline operator: ``driftline operator`` (or ``python -m driftline.operator``).

Watches ModelVersions, ModelDeployments and DriftPolicies (in the given namespaces, or the
whole cluster), serves kopf's liveness probe and Prometheus metrics, and stops on SIGTERM.
Credentials: in-cluster service account, else the kubeconfig ($KUBECONFIG).

What can be known before kopf starts is checked first, so that a missing kubeconfig or a
port in use is one clear line and exit status 1, not a traceback or a login retried
every minute. Exit status 2 is a usage error.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

PROG = "driftline operator"


class StartupError(Exception):
    """Something outside the operator that keeps it from starting; the message says what."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run the Driftline operator.")
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable); the whole cluster when none is given",
    )
    parser.add_argument(
        "--liveness-port", type=_port, default=8081, help="kopf's /healthz port (0: none)"
    )
    parser.add_argument(
        "--metrics-port", type=_port, default=9102, help="Prometheus /metrics port (0: none)"
    )
    parser.add_argument(
        "--bind", default="0.0.0.0", help="address for the liveness and metrics endpoints"
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        default=None,
        help="run as one of several replicas: kopf's peering object NAME (a ClusterKopfPeering, "
        "or a KopfPeering in each watched namespace) lets the replica with the highest "
        "priority work while the others stand by; without it the operator runs alone",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="this replica's peering priority (default: derived from $POD_ID, the pod's name)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def peering_priority(identity: str) -> int:
    """A priority in [1, 2**31 - 1] that is stable for one replica's identity.

    kopf pauses every operator that sees a live peer of the same priority, so replicas
    of one Deployment, which share their command line, must differ: the pod's name (or
    the host and process, outside a pod) spreads them, and the highest one works.
    """
    return zlib.crc32(identity.encode()) % (2**31 - 1) + 1


def replica_identity(environ: Mapping[str, str] | None = None) -> str:
    """What kopf itself names this replica by in the peering object: $POD_ID (the
    Deployment sets it to the pod's name), else the host name and process id."""
    env = os.environ if environ is None else environ
    return env.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}"


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


def check_credentials() -> str:
    """Where the credentials come from; StartupError when there are none.

    The same order as the handlers' client (handlers.kube.load_client_configuration):
    the in-cluster service account, else the kubeconfig. Only files are read here.
    """
    import kubernetes

    try:
        kubernetes.config.load_incluster_config(
            client_configuration=kubernetes.client.Configuration()
        )
        return "the in-cluster service account"
    except kubernetes.config.ConfigException:
        pass
    try:
        kubernetes.config.load_kube_config(client_configuration=kubernetes.client.Configuration())
    except (kubernetes.config.ConfigException, OSError, ValueError) as error:
        raise StartupError(
            "no Kubernetes credentials: not running in a cluster, and no usable kubeconfig "
            f"(set KUBECONFIG to a kubeconfig file, or create ~/.kube/config): {error}"
        ) from None
    return "the kubeconfig"


def check_port_free(bind: str, port: int, option: str) -> None:
    """StartupError naming the port when something already listens on it.

    The servers themselves bind later (kopf's inside its own event loop, where a failure
    is a traceback); a trial bind with the same SO_REUSEADDR they use says it first.
    """
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {bind} ({option}) is in use: is another driftline "
                    f"operator running? Stop it, or choose another port with {option} "
                    "(0 turns it off)"
                ) from None
            raise StartupError(
                f"cannot listen on {bind} port {port} ({option}): {error.strerror or error}"
            ) from None


def preflight(args: argparse.Namespace) -> str:
    """Every check that can fail before kopf starts; returns where the credentials are."""
    if args.liveness_port and args.liveness_port == args.metrics_port:
        raise StartupError(
            f"--liveness-port and --metrics-port are both {args.liveness_port}; they need two ports"
        )
    ports = ((args.liveness_port, "--liveness-port"), (args.metrics_port, "--metrics-port"))
    for port, option in ports:
        if port:
            check_port_free(args.bind, port, option)
    return check_credentials()


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        credentials = preflight(args)
    except StartupError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
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

    logging.getLogger(__name__).info("credentials: %s", credentials)
    if args.metrics_port:
        try:
            start_http_server(args.metrics_port, addr=args.bind)
        except OSError as error:  # taken between the check and now
            print(
                f"{prog}: cannot serve metrics on {args.bind}:{args.metrics_port} "
                f"(--metrics-port): {error.strerror}",
                file=sys.stderr,
            )
            return 1
    liveness = f"http://{args.bind}:{args.liveness_port}/healthz" if args.liveness_port else None
    priority = None
    if args.peering:
        priority = args.priority
        if priority is None:
            priority = peering_priority(replica_identity())
        logging.getLogger(__name__).info("peering: %s, priority %d", args.peering, priority)
        _register_peering(kopf, args.peering, priority)
    kopf.run(
        standalone=not args.peering,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=liveness,
        peering_name=args.peering,
        priority=priority,
    )
    return 0


def _register_peering(kopf: Any, name: str, priority: int) -> None:
    """Turn kopf's peering on from a startup handler registered after the handlers'
    own (kopf runs them in that order): their startup sets the standalone default that
    a single operator runs with, and this one, asked for on the command line, wins."""

    @kopf.on.startup()
    async def join_peering(settings: Any, **_: Any) -> None:
        settings.peering.standalone = False
        settings.peering.mandatory = True
        settings.peering.name = name
        settings.peering.priority = priority


if __name__ == "__main__":
    sys.exit(main(prog="python -m driftline.operator"))
