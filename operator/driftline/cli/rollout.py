"""`driftline rollout`: see and steer a ModelDeployment's rollout by hand.

The thin shell around `rollout_request` (the protocol) and `rollout_view` (the status
tree): it reads credentials, talks to the API, waits, and prints. It never edits the
user's spec: a request is one annotation that the operator acts on once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

# The rollout commands talk to the cluster with the `kubernetes` client and draw with
# rich: both come with the `rollout` extra, not with a plain `pip install driftline`.
try:
    import kubernetes
    import urllib3
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text
    from rich.tree import Tree

    from driftline.handlers.kube import (
        Forbidden,
        Kube,
        KubeError,
        NoAnswer,
        load_client_configuration,
    )
except ModuleNotFoundError as missing:
    raise click.ClickException(
        f"`driftline rollout` needs {missing.name}: install the rollout extra, "
        "pip install 'driftline[rollout]'"
    ) from missing

from driftline.cli.rollout_request import (
    Action,
    annotation_patch,
    handled_request,
    new_request,
    pending_request,
    refusal,
)
from driftline.cli.rollout_view import Node, outcome_line, render_plain, rollout_tree

API_VERSION = "driftline.io/v1alpha1"
GROUP, VERSION = API_VERSION.split("/")
KIND, PLURAL = "ModelDeployment", "modeldeployments"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_TIMEOUT_S = 30
RBAC_HINT = "docs/rollouts.md (Manual control) lists the permissions the rollout commands need"

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 1: never a traceback for a failure we foresee."""
    raise click.ClickException(message)


def explain(error: KubeError, what: str) -> str:
    if isinstance(error, NoAnswer):
        return f"cannot reach the Kubernetes API to {what}: {error.message}"
    if isinstance(error, Forbidden):
        if error.status == 401:
            return f"the Kubernetes API refused the credentials (401 Unauthorized) to {what}"
        return f"forbidden to {what}: {error.message}. {RBAC_HINT}"
    return f"cannot {what}: {error.status} {error.reason}: {error.message}"


def api_exception_error(error: kubernetes.client.ApiException, what: str) -> KubeError:
    """The kubernetes client's exception as our error classes (the watch raises these)."""
    message = str(error.reason or "")
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(error.body or "").get("message") or message
    return KubeError.of(int(error.status or 0), str(error.reason or ""), message, what)


def default_namespace() -> str:
    """Where the credentials point: the pod's namespace in a cluster, else the kubeconfig
    context's namespace, else "default" (the order load_client_configuration uses)."""
    with contextlib.suppress(OSError):
        in_cluster = ""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            in_cluster = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if in_cluster:
            return in_cluster
    with contextlib.suppress(kubernetes.config.ConfigException, OSError, KeyError, TypeError):
        _, active = kubernetes.config.list_kube_config_contexts()
        namespace = (active.get("context") or {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"


class Session:
    """One ModelDeployment through one API connection."""

    def __init__(self, name: str, namespace: str | None) -> None:
        try:
            self.api_client = load_client_configuration()
        except (kubernetes.config.ConfigException, OSError) as error:
            fail(
                f"no Kubernetes credentials: {error} "
                "(set KUBECONFIG or ~/.kube/config, or run in a pod with a service account)"
            )
        self.kube = Kube(self.api_client)
        self.name = name
        self.namespace = namespace or default_namespace()

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def call(self, what: str, function: Callable[[], T]) -> T:
        try:
            return function()
        except KubeError as error:
            fail(explain(error, what))
        except kubernetes.client.ApiException as error:
            fail(explain(api_exception_error(error, what), what))
        except urllib3.exceptions.HTTPError as error:
            fail(f"cannot reach the Kubernetes API to {what}: {error}")

    def not_found(self) -> NoReturn:
        fail(f'ModelDeployment "{self.name}" not found in namespace "{self.namespace}"')

    def read(self) -> dict[str, Any]:
        obj = self.call(
            f"read ModelDeployment {self.where}",
            lambda: self.kube.get(API_VERSION, KIND, self.namespace, self.name),
        )
        if obj is None:
            self.not_found()
        return obj

    def patch_metadata(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        obj = self.call(
            f"patch ModelDeployment {self.where}",
            lambda: self.kube.patch_metadata(
                API_VERSION, KIND, self.namespace, self.name, metadata
            ),
        )
        if obj is None:
            self.not_found()
        return obj

    def events(self, uid: str | None) -> tuple[list[dict[str, Any]] | None, str | None]:
        """The core/v1 Events about the object, or None and why they could not be read
        (a user may read rollouts without being allowed to list Events)."""
        core = kubernetes.client.CoreV1Api(self.api_client)
        selector = f"involvedObject.kind={KIND},involvedObject.name={self.name}"
        try:
            listed = core.list_namespaced_event(
                self.namespace, field_selector=selector, _request_timeout=(5, 30)
            )
        except kubernetes.client.ApiException as error:
            return None, explain(api_exception_error(error, "list Events"), "list Events")
        except urllib3.exceptions.HTTPError as error:
            return None, str(error)
        items = self.api_client.sanitize_for_serialization(listed).get("items") or []
        return [item for item in items if isinstance(item, dict)], None

    def tree(self, obj: Mapping[str, Any]) -> Node:
        events, error = self.events((obj.get("metadata") or {}).get("uid"))
        return rollout_tree(obj, events, datetime.now(UTC), events_error=error)

    def changes(self, start: Mapping[str, Any], deadline: float | None) -> Iterator[dict[str, Any]]:
        """Each new state of the object after `start`, from the API's watch, until the
        deadline (time.monotonic(); None: forever). A watch the server ends, or whose
        history expired (410), resumes from a fresh read, so no change is missed."""
        custom = kubernetes.client.CustomObjectsApi(self.api_client)
        version = str(start["metadata"]["resourceVersion"])
        what = f"watch ModelDeployment {self.where}"
        while deadline is None or time.monotonic() < deadline:
            # the server ends each watch by itself; a silent one is re-opened from where it was
            remaining = 300.0 if deadline is None else deadline - time.monotonic()
            seconds = max(1, math.ceil(remaining))
            try:
                for event in kubernetes.watch.Watch().stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=seconds,
                    _request_timeout=(5, seconds + 5),
                ):
                    obj = event["object"]
                    if event["type"] == "DELETED":
                        fail(f"ModelDeployment {self.where} was deleted")
                    version = str(obj["metadata"]["resourceVersion"])
                    if event["type"] != "BOOKMARK":
                        yield obj
                    if deadline is not None and time.monotonic() >= deadline:
                        return
            except kubernetes.client.ApiException as error:
                if error.status != 410:
                    fail(explain(api_exception_error(error, what), what))
            except urllib3.exceptions.HTTPError:
                pass  # the stream broke or stayed silent: read afresh below
            if deadline is not None and time.monotonic() >= deadline:
                return
            current = self.read()
            if str(current["metadata"]["resourceVersion"]) != version:
                version = str(current["metadata"]["resourceVersion"])
                yield current


def rich_tree(node: Node) -> Tree:
    tree = Tree(Text(node.text, style=node.style or ""))

    def add(parent: Tree, children: tuple[Node, ...]) -> None:
        for child in children:
            add(parent.add(Text(child.text, style=child.style or "")), child.children)

    add(tree, node.children)
    return tree


name_argument = click.argument("name")
namespace_option = click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace; by default the kubeconfig context's, else default.",
)
timeout_option = click.option(
    "--timeout",
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds to wait for the operator to act on the request.",
)
no_wait_option = click.option(
    "--no-wait", is_flag=True, help="Write the request and return without waiting."
)


@click.group()
def rollout() -> None:
    """See and steer a ModelDeployment's rollout.

    Requests (promote, abort, retry, pause, resume) never edit the spec: each writes the
    driftline.io/rollout-request annotation, which the operator acts on once.
    """


@rollout.command()
@name_argument
@namespace_option
@click.option("--watch", "-w", is_flag=True, help="Redraw on every change, until Ctrl-C.")
@click.option(
    "--timeout",
    default=None,
    type=click.IntRange(min=1),
    help="With --watch: stop after this many seconds.",
)
def status(name: str, namespace: str | None, watch: bool, timeout: int | None) -> None:
    """Show the rollout of ModelDeployment NAME as a tree."""
    session = Session(name, namespace)
    obj = session.read()
    terminal = sys.stdout.isatty()
    if not watch:
        draw(session.tree(obj), terminal)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    with contextlib.suppress(KeyboardInterrupt):
        if terminal:
            console = Console()
            with Live(
                rich_tree(session.tree(obj)),
                console=console,
                auto_refresh=False,
                vertical_overflow="visible",
            ) as live:
                for changed in session.changes(obj, deadline):
                    live.update(rich_tree(session.tree(changed)), refresh=True)
        else:
            draw(session.tree(obj), terminal=False)
            for changed in session.changes(obj, deadline):
                click.echo()
                draw(session.tree(changed), terminal=False)


def draw(node: Node, terminal: bool) -> None:
    if terminal:
        Console().print(rich_tree(node))
    else:
        click.echo(render_plain(node), nl=False)


def send(action: Action, name: str, namespace: str | None, timeout: int, no_wait: bool) -> None:
    """Write one request, then wait until the operator records it as handled."""
    session = Session(name, namespace)
    obj = session.read()
    reason = refusal(action, obj)
    if reason is not None:
        fail(reason)
    replaced = pending_request(obj)
    request = new_request(action, datetime.now(UTC))
    written = session.patch_metadata(annotation_patch(request))
    click.echo(f"requested {action} of ModelDeployment {session.where} (request {request.id})")
    if replaced is not None:
        click.echo(
            f"note: this replaces request {replaced.get('id')} ({replaced.get('action')}), "
            "which the operator had not acted on",
            err=True,
        )
    if no_wait:
        return
    click.echo(f"waiting up to {timeout}s for the operator to act on it")
    deadline = time.monotonic() + timeout
    if handled_request(written) == request.id:
        click.echo(f"done: {outcome_line(written)}")
        return
    for changed in session.changes(written, deadline):
        if handled_request(changed) == request.id:
            click.echo(f"done: {outcome_line(changed)}")
            return
    fail(
        f"the operator did not act on request {request.id} ({action}) within {timeout}s: "
        f"is the driftline operator running and watching namespace {session.namespace}? "
        "The request stays on the object and is acted on when the operator next sees it, "
        "unless a newer request replaces it"
    )


@rollout.command()
@name_argument
@namespace_option
@click.option(
    "--full",
    is_flag=True,
    help="Skip the remaining steps and their analysis: all traffic to the new version now.",
)
@timeout_option
@no_wait_option
def promote(name: str, namespace: str | None, full: bool, timeout: int, no_wait: bool) -> None:
    """Move the rollout of NAME past its current step (or pause) to the next one."""
    send("promote-full" if full else "promote", name, namespace, timeout, no_wait)


@rollout.command()
@name_argument
@namespace_option
@timeout_option
@no_wait_option
def abort(name: str, namespace: str | None, timeout: int, no_wait: bool) -> None:
    """Stop the rollout of NAME and send all traffic back to the stable version."""
    send("abort", name, namespace, timeout, no_wait)


@rollout.command()
@name_argument
@namespace_option
@timeout_option
@no_wait_option
def retry(name: str, namespace: str | None, timeout: int, no_wait: bool) -> None:
    """Start the aborted rollout of NAME again from its first step."""
    send("retry", name, namespace, timeout, no_wait)


@rollout.command()
@name_argument
@namespace_option
@timeout_option
@no_wait_option
def pause(name: str, namespace: str | None, timeout: int, no_wait: bool) -> None:
    """Hold the rollout of NAME where it is (spec.paused stays as written)."""
    send("pause", name, namespace, timeout, no_wait)


@rollout.command()
@name_argument
@namespace_option
@timeout_option
@no_wait_option
def resume(name: str, namespace: str | None, timeout: int, no_wait: bool) -> None:
    """Continue a rollout of NAME held by `driftline rollout pause`."""
    send("resume", name, namespace, timeout, no_wait)
