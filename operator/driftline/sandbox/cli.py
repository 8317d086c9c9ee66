"""`driftline sandbox [--scenario NAME] [--keep]`: Driftline end to end on one machine,
with no Kubernetes and no Docker (docs/sandbox.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live

from driftline.render.labels import service_name
from driftline.sandbox import display, example, leftovers, processes
from driftline.sandbox.example import ExampleError, make_artifacts
from driftline.sandbox.leftovers import WORKDIR_PREFIX, OwnedFolder
from driftline.sandbox.podstatus import is_pod_ready
from driftline.sandbox.routing import target_port
from driftline.sandbox.runtime import Sandbox, SandboxFailed, first_of
from driftline.sandbox.slots import NoFreeSlot, claim_slot
from driftline.sandbox.story import (
    DEPLOYMENT,
    MODEL,
    NAMESPACE,
    SCENARIOS,
    Scenario,
    Story,
    StoryFailed,
    View,
    monitor,
)
from driftline.sandbox.story import (
    scenario as choose_scenario,
)
from driftline.sandbox.traffic import send_labels, send_traffic

EXIT_INTERRUPTED = 130


async def _refresh(live: Live, view: View) -> None:
    while True:
        live.update(display.live(view))
        await asyncio.sleep(0.25)  # the display's frame pace


async def run(sandbox: Sandbox, keep: bool, console: Console) -> None:
    view = sandbox.view
    service_key = ("Service", NAMESPACE, service_name(DEPLOYMENT))

    def service_address() -> str | None:
        addresses = sandbox.router.addresses.get(service_key) if sandbox.router else None
        return addresses[0] if addresses else None

    sandbox.write_state()  # the slot and the folders, before anything else starts
    view.scenario = sandbox.scenario.label
    view.enter("making the example's artifacts")
    directory = sandbox.workdir / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    # served first: the models' URIs (and the retraining Job's) name the server's address
    await sandbox.serve_artifacts(directory)
    artifacts = await asyncio.to_thread(make_artifacts, directory, sandbox.artifacts_url)
    view.enter("starting the local API, kubelet and operator")
    await sandbox.start_apiserver()
    sandbox.start_cluster_tasks()
    await sandbox.start_prometheus()
    await sandbox.start_operator()
    assert sandbox.kube is not None
    story = Story(
        sandbox.kube, sandbox.scenario, view, sandbox.artifacts_url, artifacts, service_address
    )
    helpers = [
        asyncio.create_task(monitor(sandbox.kube, view), name="status monitor"),
        asyncio.create_task(
            send_traffic(
                view.traffic,
                view.feed,
                lambda: view.world,
                service_address,
                sandbox.scenario.traffic_interval_s,
                artifacts.traffic,
                artifacts.labels,
                MODEL,
                example.INPUT_NAME,
            ),
            name="traffic",
        ),
        asyncio.create_task(send_labels(view.feed, sandbox.kube, NAMESPACE, MODEL), name="labels"),
    ]
    sandbox.tasks.extend(helpers)
    live = Live(display.live(view), console=console, transient=True, auto_refresh=False)
    if console.is_terminal:
        live.start()
        sandbox.tasks.append(asyncio.create_task(_refresh(live, view), name="display"))
    try:
        await first_of(story.run(), sandbox.watchdog())
    finally:
        if live.is_started:
            live.stop()
    view.report_url = await report_url(sandbox)
    console.print(display.summary(view))
    if keep:
        address = service_address()
        console.print(f"kubeconfig:     {sandbox.kubeconfig}")
        console.print(f"inference URL:  http://{address}/v2/models/{MODEL}/infer")
        if sandbox.prometheus_url:
            console.print(f"prometheus:     {sandbox.prometheus_url}")
        console.print("everything keeps running; Ctrl-C stops it")
        await sandbox.watchdog()


async def report_url(sandbox: Sandbox) -> str:
    """The drift sidecar's report page of a ready serving pod."""
    assert sandbox.kube is not None
    for pod in await sandbox.kube.list("v1", "pods", NAMESPACE):
        port = target_port(pod, "evaluator")
        if is_pod_ready(pod) and port is not None:
            return f"http://{pod['status']['podIP']}:{port}/report"
    return "(no ready pod with a drift sidecar)"


@click.command()
@click.option(
    "--scenario",
    type=click.Choice(sorted(SCENARIOS)),
    default="default",
    show_default=True,
    help="Which story to run: "
    + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values()),
)
@click.option(
    "--quick",
    is_flag=True,
    help="Short canary pauses, probe periods, drift and analysis intervals (tests, CI).",
)
@click.option("--keep", is_flag=True, help="Leave everything running at the end (Ctrl-C stops it).")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the kubeconfig, logs, artifacts and sandbox.json go (default: a new temporary "
    "folder, removed at a successful end unless --keep).",
)
def sandbox(scenario: str, quick: bool, keep: bool, workdir: Path | None) -> None:
    """Run Driftline end to end on this machine: the real operator against the local
    Kubernetes API, pods as local processes, the bundled example rolled out as a canary."""
    owned, directory = _workdir(workdir)
    console = Console(stderr=False)
    (directory / "logs").mkdir(exist_ok=True)
    logging.basicConfig(
        filename=directory / "logs" / "sandbox.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    leftovers.remove_abandoned(Path(tempfile.gettempdir()), keep=[directory])
    code = 1
    try:
        code = _run(directory, choose_scenario(scenario, quick), keep, console)
    finally:
        if owned is not None and code == 0 and not keep:
            owned.remove()
        elif owned is not None:
            owned.disown()  # kept for the user to read: no later sandbox removes it
    if code != 0:
        console.print(f"logs and state kept in {directory}")
    sys.exit(code)


def _run(directory: Path, scenario: Scenario, keep: bool, console: Console) -> int:
    """The sandbox on an address slot of its own, held until it ends; its exit status."""
    try:
        with claim_slot() as claim:
            box = Sandbox(directory, scenario, View(), claim.addresses)
            return asyncio.run(_main(box, keep, console))
    except NoFreeSlot as error:
        console.print(f"[red]sandbox failed:[/red] {error}")
        return 1


def _workdir(given: Path | None) -> tuple[OwnedFolder | None, Path]:
    """The folder the user named, or one of the sandbox's own (removed if it is killed)."""
    if given is None:
        owned = OwnedFolder.make(WORKDIR_PREFIX)
        return owned, owned.path
    given.mkdir(parents=True, exist_ok=True)
    leftovers.disown(given)  # a dead sandbox's workdir, reused: now the user's
    return None, given


async def _main(box: Sandbox, keep: bool, console: Console) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        main.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt)
    try:
        await run(box, keep, console)
        return 0
    except asyncio.CancelledError:
        if not interrupted:
            raise
        console.print("interrupted: stopping everything")
        return EXIT_INTERRUPTED
    except (SandboxFailed, StoryFailed, ExampleError) as error:
        console.print(f"[red]sandbox failed:[/red] {error}")
        return 1
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(box.stop())
        processes.kill_all()
