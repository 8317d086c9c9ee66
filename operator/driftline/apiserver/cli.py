"""`driftline apiserver`: the local Kubernetes API on loopback, until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click
import yaml

from driftline.apiserver.bootstrap import load_crds, write_kubeconfig
from driftline.apiserver.controllers import JobOutcome
from driftline.apiserver.errors import ApiError
from driftline.apiserver.server import ApiHandler, LocalApiServer


def default_crds_directory() -> Path | None:
    """The repository's crds/ directory, when running from a checkout."""
    for parent in [Path.cwd(), *Path(__file__).resolve().parents]:
        candidate = parent / "crds"
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


async def serve(
    port: int,
    kubeconfig: Path,
    crds: Path | None,
    job_outcome: str,
    deployment_delay: float,
    bookmark_interval: float,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with LocalApiServer(ApiHandler(bookmark_interval=bookmark_interval), port=port) as server:
        try:
            loaded = load_crds(server.cluster, crds) if crds is not None else []
        except (ApiError, yaml.YAMLError) as exc:
            raise click.ClickException(f"cannot load the CRDs in {crds}: {exc}") from exc
        server.controllers.jobs.default = JobOutcome(succeed=job_outcome == "succeed")
        server.controllers.deployments.ready_delay = deployment_delay
        write_kubeconfig(kubeconfig, server.url)
        click.echo(
            f"serving the local Kubernetes API at {server.url} ({len(loaded)} CRDs); kubeconfig: {kubeconfig}",
            err=True,
        )
        await stop.wait()
    click.echo("stopped", err=True)


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
    help="Directory of CustomResourceDefinition YAML to preload (default: the repository's crds/).",
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
def apiserver(
    port: int,
    kubeconfig: Path,
    crds: Path | None,
    no_crds: bool,
    job_outcome: str,
    deployment_delay: float,
    bookmark_interval: float,
) -> None:
    """Run the local Kubernetes API on 127.0.0.1 until SIGTERM.

    Writes a kubeconfig that kopf, the `kubernetes` client and kubectl can use (kubectl
    needs --validate=false: the server publishes no OpenAPI document). Stand-in
    controllers run: Deployments report ready replicas, Services get a clusterIP, and Jobs
    finish with a pod whose termination message a Job can set with the annotations
    apiserver.driftline.io/job-outcome (succeed or fail) and
    apiserver.driftline.io/termination-message.
    """
    directory = None if no_crds else (crds or default_crds_directory())
    asyncio.run(
        serve(port, kubeconfig, directory, job_outcome, deployment_delay, bookmark_interval)
    )
