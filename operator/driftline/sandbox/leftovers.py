"""The sandbox's temporary folders, and removing those left by sandboxes that died
without cleaning up (killed with SIGKILL: no code of theirs ran).

A folder the sandbox makes for itself (its pods' root `dls-*`, and its workdir
`driftline-sandbox-*` when none is given) holds a marker file whose lock (flock) the
sandbox holds for as long as it lives; the kernel drops the lock when the process dies.
At start a sandbox removes every such folder of its user whose lock it can take: the
owner is provably gone. A folder without a marker is never removed: a workdir the user
named, a folder the sandbox kept on purpose (it drops the marker then), anyone else's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("driftline.sandbox.leftovers")
MARKER = ".driftline-sandbox-owner"
POD_ROOT_PREFIX = "dls-"  # short: Unix socket paths under it are limited to 108 bytes
WORKDIR_PREFIX = "driftline-sandbox-"
PREFIXES = (POD_ROOT_PREFIX, WORKDIR_PREFIX)


@dataclass(frozen=True)
class Folder:
    """What the cleanup knows of one entry of the temporary directory."""

    path: Path
    is_directory: bool  # a real directory, not a link to one
    ours: bool  # owned by this user
    marked: bool  # holds the marker of a sandbox that made it
    owner_alive: bool  # the marker's lock is held


def is_kept(path: Path, keep: Collection[Path]) -> bool:
    """True when `path` is one of `keep` or holds one of them."""
    return any(path == k or path in k.parents for k in keep)


def is_abandoned(folder: Folder, keep: Collection[Path] = ()) -> bool:
    """A folder a sandbox made for itself whose owner is dead; never one of `keep`."""
    return (
        folder.path.name.startswith(PREFIXES)
        and folder.is_directory
        and folder.ours
        and folder.marked
        and not folder.owner_alive
        and not is_kept(folder.path, keep)
    )


def _try_lock(path: Path) -> int | None:
    """The marker's descriptor with its lock taken, or None when another process holds it."""
    # no following a link, no waiting on a FIFO: only a marker file counts
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


@contextlib.contextmanager
def _inspected(path: Path) -> Iterator[Folder]:
    """The folder as it is; a free marker's lock stays taken until the caller is done,
    so that no other sandbox's cleanup decides on the same folder at the same time."""
    info = path.lstat()
    is_directory = stat.S_ISDIR(info.st_mode)
    ours = info.st_uid == os.getuid()
    lock: int | None = None
    marked = owner_alive = False
    if is_directory and ours:
        try:
            lock = _try_lock(path / MARKER)
        except FileNotFoundError:
            pass
        else:
            marked, owner_alive = True, lock is None
    try:
        yield Folder(path, is_directory, ours, marked, owner_alive)
    finally:
        if lock is not None:
            os.close(lock)


def remove_abandoned(parent: Path, keep: Collection[Path] = ()) -> list[Path]:
    """Remove the folders under `parent` that sandboxes made and left when they died;
    the folders removed."""
    keep = [k.resolve() for k in keep]
    removed = []
    for entry in sorted(parent.resolve().iterdir()):
        if not entry.name.startswith(PREFIXES) or is_kept(entry, keep):
            continue  # not a sandbox's, or the user's: not even locked
        with contextlib.suppress(OSError), _inspected(entry) as folder:
            if is_abandoned(folder, keep):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    if removed:
        log.info("removed folders left by sandboxes that died: %s", ", ".join(map(str, removed)))
    return removed


class OwnedFolder:
    """A temporary folder made by this process, marked as its own until removed or
    disowned."""

    def __init__(self, path: Path, lock: int) -> None:
        self.path = path
        self._lock: int | None = lock

    @classmethod
    def make(cls, prefix: str, parent: Path | None = None) -> OwnedFolder:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        # Locked before it has the marker's name, then renamed (atomic): a cleanup never
        # sees the marker free while its owner is still taking it.
        unnamed = path / f"{MARKER}.new"
        lock = os.open(unnamed, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.rename(unnamed, path / MARKER)
        return cls(path, lock)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._release()

    def disown(self) -> None:
        """Leave the folder for good (a failed run's logs): no cleanup will remove it."""
        disown(self.path)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def disown(path: Path) -> None:
    """Drop the marker from a folder, so that no cleanup ever removes it: one the sandbox
    keeps, or one the user named (a dead sandbox's workdir given to --workdir)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        (path / MARKER).unlink()
