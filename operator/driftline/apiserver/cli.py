"""`driftline apiserver`: the local Kubernetes API on loopback, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import signal
from pathlib import Path

import click
import yaml

from driftline.apiserver.bootstrap import load_crds, write_kubeconfig
from driftline.apiserver.cluster import Cluster
from driftline.apiserver.controllers import JobOutcome
from driftline.apiserver.errors import ApiError
from driftline.apiserver.server import ApiHandler, LocalApiServer


class CrdSource(enum.Enum):
    """Where the preloaded CustomResourceDefinitions come from."""

    # Generated from the pydantic models at start-up: the same documents `driftline crds`
    # writes, so an installed package needs no crds/ data files and is never stale.
    GENERATED = "generated"
    NONE = "none"


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
    stand_ins: bool = True,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    handler = ApiHandler(bookmark_interval=bookmark_interval)
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
    try:
        write_kubeconfig(kubeconfig, server.url)
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
    asyncio.run(
        serve(
            port,
            kubeconfig,
            source,
            job_outcome,
            deployment_delay,
            bookmark_interval,
            stand_ins=not no_stand_ins,
        )
    )
