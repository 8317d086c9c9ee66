"""Running the real commands as processes, and waiting on what they do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]

# `driftline` exactly as its console script runs it, with this interpreter
DRIFTLINE = [sys.executable, "-c", "import sys; from driftline.cli import main; sys.exit(main())"]

# A deadline for a command that should end by itself; passing it is a failure, not a
# measurement (a command that retries forever never gets there).
COMMAND_DEADLINE_S = 120


def run(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=COMMAND_DEADLINE_S,
    )


def clean_environment(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without Kubernetes credentials, HOME moved to `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
        and not k.startswith("DRIFTLINE_")
    }
    env["HOME"] = str(home)
    env.update(extra)
    return env


def write_kubeconfig(path: Path, server: str = "http://127.0.0.1:1") -> Path:
    """A syntactically valid kubeconfig; nothing needs to answer at `server`."""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    return path


@contextmanager
def listening_socket(host: str = "127.0.0.1") -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as held:
        held.bind((host, 0))
        held.listen()
        yield held.getsockname()[1]


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    return wait_until(check, timeout, what=what)
