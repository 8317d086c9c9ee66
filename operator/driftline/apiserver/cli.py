"""`driftline apiserver`: the local Kubernetes API on loopback, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import signal
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from driftline.apiserver.access import AccessControl
from driftline.apiserver.bootstrap import load_crds, write_kubeconfig
from driftline.apiserver.cluster import Cluster
from driftline.apiserver.controllers import JobOutcome
from driftline.apiserver.errors import ApiError
from driftline.apiserver.rbac import UserInfo
from driftline.apiserver.server import ApiHandler, LocalApiServer
from driftline.apiserver.tokens import TokenFileError, parse_token_file


class CrdSource(enum.Enum):
    """Where the preloaded CustomResourceDefinitions come from."""

    # Generated from the pydantic models at start-up: the same documents `driftline crds`
    # writes, so an installed package needs no crds/ data files and is never stale.
    GENERATED = "generated"
    NONE = "none"


@dataclass(frozen=True)
class Security:
    """Authentication and RBAC: the static tokens and where decisions are logged."""

    tokens: dict[str, UserInfo]
    log_path: Path | None


def load_generated_crds(cluster: Cluster) -> list[str]:
    """Create the CustomResourceDefinitions that driftline.api generates."""
    from driftline.api.crdgen import all_crds

    crds = cluster.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    return [
        cluster.create(crds, None, document)["metadata"]["name"] for document in all_crds().values()
    ]


async def serve(
    port: int,
    kubeconfig: Path,
    crds: Path | CrdSource,
    job_outcome: str,
    deployment_delay: float,
    bookmark_interval: float,
    security: Security | None = None,
    stand_ins: bool = True,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    handler = ApiHandler(bookmark_interval=bookmark_interval)
    if security is not None:
        handler.access = AccessControl(handler.cluster, security.tokens, security.log_path)
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(LocalApiServer(handler, port=port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on 127.0.0.1 is in use; choose another with --port "
                    "(0 picks a free one)"
                ) from None
            raise click.ClickException(f"cannot listen on 127.0.0.1 port {port}: {error}") from None
        if not stand_ins:
            # Real controllers (the sandbox's) run Deployments and Jobs; the Service IP
            # allocator stays, as it is kube-apiserver's own work.
            server.controllers.deployments.enabled = server.controllers.jobs.enabled = False
        await _serve_until(stop, server, kubeconfig, crds, job_outcome, deployment_delay)
    click.echo("stopped", err=True)


async def _serve_until(
    stop: asyncio.Event,
    server: LocalApiServer,
    kubeconfig: Path,
    crds: Path | CrdSource,
    job_outcome: str,
    deployment_delay: float,
) -> None:
    try:
        if crds is CrdSource.GENERATED:
            loaded = load_generated_crds(server.cluster)
        elif crds is CrdSource.NONE:
            loaded = []
        else:
            loaded = load_crds(server.cluster, crds)
    except (ApiError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot load the CRDs in {crds}: {exc}") from exc
    server.controllers.jobs.default = JobOutcome(succeed=job_outcome == "succeed")
    server.controllers.deployments.ready_delay = deployment_delay
    access = server.handler.access
    try:
        write_kubeconfig(kubeconfig, server.url, access.admin_token if access else None)
    except OSError as error:
        raise click.ClickException(f"cannot write the kubeconfig {kubeconfig}: {error}") from None
    click.echo(
        f"serving the local Kubernetes API at {server.url} ({len(loaded)} CRDs); "
        f"kubeconfig: {kubeconfig}",
        err=True,
    )
    await stop.wait()


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1; 0 picks a free one.",
)
@click.option(
    "--kubeconfig",
    "kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write a kubeconfig for this server.",
)
@click.option(
    "--crds",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of CustomResourceDefinition YAML to preload "
    "(default: the CRDs generated from this driftline's models).",
)
@click.option("--no-crds", is_flag=True, help="Preload no CustomResourceDefinitions.")
@click.option(
    "--job-outcome",
    type=click.Choice(["succeed", "fail"]),
    default="succeed",
    show_default=True,
    help="How the Job stand-in finishes Jobs.",
)
@click.option(
    "--deployment-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds before the Deployment stand-in reports replicas ready.",
)
@click.option(
    "--bookmark-interval",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds between watch bookmarks.",
)
@click.option(
    "--authorization-mode",
    type=click.Choice(["AlwaysAllow", "RBAC"]),
    default="AlwaysAllow",
    show_default=True,
    help="RBAC: every request needs a bearer token and is authorized by the Roles, "
    "ClusterRoles and bindings in the cluster; the kubeconfig written gets an admin token "
    "(group system:masters).",
)
@click.option(
    "--token-auth-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='Static tokens, as kube-apiserver\'s: CSV lines token,user,uid,"group1,group2".',
)
@click.option(
    "--authorization-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="DRIFTLINE_APISERVER_AUTHORIZATION_LOG",
    help="Append each authorization decision (user, verb, group, resource, the rule that "
    "allowed it) to this file as one JSON line.",
)
@click.option(
    "--no-stand-ins",
    is_flag=True,
    help="Run no Deployment or Job stand-in: for `driftline sandbox`, whose controllers and "
    "kubelet run them for real.",
)
def apiserver(
    port: int,
    kubeconfig: Path,
    crds: Path | None,
    no_crds: bool,
    job_outcome: str,
    deployment_delay: float,
    bookmark_interval: float,
    authorization_mode: str,
    token_auth_file: Path | None,
    authorization_log: Path | None,
    no_stand_ins: bool,
) -> None:
    """Run the local Kubernetes API on 127.0.0.1 until SIGTERM.

    Writes a kubeconfig that kopf, the `kubernetes` client and kubectl can use (kubectl
    needs --validate=false: the server publishes no OpenAPI document). Stand-in
    controllers run: Deployments report ready replicas, Services get a clusterIP, and Jobs
    finish with a pod whose termination message a Job can set with the annotations
    apiserver.driftline.io/job-outcome (succeed or fail) and
    apiserver.driftline.io/termination-message. --no-stand-ins turns the Deployment and
    Job stand-ins off.
    """
    source: Path | CrdSource = CrdSource.NONE if no_crds else (crds or CrdSource.GENERATED)
    security = _security(authorization_mode, token_auth_file, authorization_log)
    asyncio.run(
        serve(
            port,
            kubeconfig,
            source,
            job_outcome,
            deployment_delay,
            bookmark_interval,
            security,
            stand_ins=not no_stand_ins,
        )
    )


def _security(mode: str, token_file: Path | None, log_path: Path | None) -> Security | None:
    if mode != "RBAC":
        if token_file is not None or log_path is not None:
            raise click.UsageError(
                "--token-auth-file and --authorization-log need --authorization-mode RBAC"
            )
        return None
    tokens = {}
    if token_file is not None:
        try:
            tokens = parse_token_file(token_file.read_text(), str(token_file))
        except (OSError, TokenFileError) as error:
            raise click.BadParameter(str(error), param_hint="--token-auth-file") from None
    return Security(tokens, log_path)
