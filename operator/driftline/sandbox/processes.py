"""Starting and stopping the sandbox's processes so that none outlives it.

Each process starts in its own session (its own process group, so a stop reaches what it
forked) with PR_SET_PDEATHSIG: if the sandbox dies, even by SIGKILL, the kernel sends the
child SIGKILL. Every process is registered, and an atexit hook (and the CLI's signal
handlers) kill the groups that are left. Processes are started from the main thread:
the death signal follows the thread that forked, not the process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO

PR_SET_PDEATHSIG = 1
_live: set[int] = set()  # process group ids started and not yet reaped


def _die_with(parent: int) -> Callable[[], None]:
    """What the child runs before exec: die with `parent` (this process)."""

    def arrange() -> None:  # runs in the child, between fork and exec
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl took effect: then no signal ever comes.
        if os.getppid() != parent:
            os._exit(1)

    return arrange


async def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    cwd: str | None = None,
    log: IO[bytes] | int | None = None,
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT if log is not None else None,
        start_new_session=True,
        preexec_fn=_die_with(os.getpid()),
    )
    _live.add(process.pid)
    return process


def signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def stop(process: asyncio.subprocess.Process, grace_s: float) -> int:
    """SIGTERM to the group, SIGKILL after `grace_s`; the exit status."""
    if process.returncode is None:
        signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    # whatever the leader forked and left behind in its group goes too
    signal_group(process.pid, signal.SIGKILL)
    _live.discard(process.pid)
    return process.returncode if process.returncode is not None else -1


def forget(pid: int) -> None:
    _live.discard(pid)


def kill_all() -> None:
    """SIGKILL every group still registered (at exit, or on a fatal signal)."""
    for pid in list(_live):
        signal_group(pid, signal.SIGKILL)
        _live.discard(pid)


atexit.register(kill_all)


def exit_code(returncode: int) -> tuple[int, int]:
    """(exit code, signal) as Kubernetes reports them: 128+n for a signal n."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, 0
