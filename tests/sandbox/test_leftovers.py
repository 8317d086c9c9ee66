"""Which folders a starting sandbox removes: those a sandbox made for itself and left when
it died (pure decision), and the same on real folders with real owner processes."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.sandbox.leftovers import (
    MARKER,
    POD_ROOT_PREFIX,
    WORKDIR_PREFIX,
    Folder,
    OwnedFolder,
    disown,
    is_abandoned,
    is_kept,
    remove_abandoned,
)

ABANDONED = Folder(
    Path("/tmp/dls-abc"), is_directory=True, ours=True, marked=True, owner_alive=False
)


def test_a_marked_folder_of_ours_whose_owner_is_dead_is_abandoned():
    assert is_abandoned(ABANDONED)
    assert is_abandoned(dataclasses.replace(ABANDONED, path=Path("/tmp/driftline-sandbox-x")))


@pytest.mark.parametrize(
    "change",
    [
        {"owner_alive": True},
        {"marked": False},  # a workdir the user named, a folder kept on purpose
        {"ours": False},
        {"is_directory": False},  # a file, or a link to a folder
        {"path": Path("/tmp/results")},
    ],
    ids=["live owner", "no marker", "another user's", "not a directory", "not a sandbox's name"],
)
def test_any_other_folder_is_not(change: dict[str, object]):
    assert not is_abandoned(dataclasses.replace(ABANDONED, **change))  # type: ignore[arg-type]


def test_a_folder_to_keep_is_never_abandoned():
    assert not is_abandoned(ABANDONED, keep=[ABANDONED.path])
    assert not is_abandoned(ABANDONED, keep=[ABANDONED.path / "inner"])
    assert is_abandoned(ABANDONED, keep=[Path("/tmp/dls-abcd"), Path("/tmp")])


def test_kept_means_the_path_itself_or_a_folder_holding_it():
    keep = [Path("/tmp/driftline-sandbox-a/work")]
    assert is_kept(Path("/tmp/driftline-sandbox-a/work"), keep)
    assert is_kept(Path("/tmp/driftline-sandbox-a"), keep)
    assert not is_kept(Path("/tmp/driftline-sandbox-a/work/inner"), keep)
    assert not is_kept(Path("/tmp/driftline-sandbox-ab"), keep)


OWNER = """
import sys
from pathlib import Path
from driftline.sandbox.leftovers import OwnedFolder
folders = [OwnedFolder.make(prefix, Path(sys.argv[1])) for prefix in sys.argv[2:]]
print(*(f.path for f in folders), flush=True)
sys.stdin.read()  # owns the folders until killed
"""


@contextlib.contextmanager
def owner(parent: Path, *prefixes: str) -> Iterator[tuple[subprocess.Popen[str], list[Path]]]:
    """A process that makes a folder of its own under `parent` for each prefix and holds
    them; its folders."""
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(parent), *prefixes],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, [Path(p) for p in process.stdout.readline().split()]  # once marked
    finally:
        process.kill()
        process.wait(timeout=30)


def left_by_a_killed_owner(parent: Path, *prefixes: str) -> list[Path]:
    """Folders whose owner died by SIGKILL: no code of its ran."""
    with owner(parent, *prefixes) as (process, folders):
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    return folders


def test_a_folder_whose_owner_was_killed_is_removed_and_a_live_ones_stay(tmp_path: Path):
    live = OwnedFolder.make(POD_ROOT_PREFIX, tmp_path)
    with owner(tmp_path, WORKDIR_PREFIX, POD_ROOT_PREFIX) as (process, folders):
        (folders[0] / "logs").mkdir()
        assert remove_abandoned(tmp_path) == []  # every owner alive
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert remove_abandoned(tmp_path) == sorted(folders)
    assert not any(f.exists() for f in folders)
    assert (live.path / MARKER).is_file()
    live.remove()
    assert not live.path.exists()


def test_folders_without_a_dead_owners_marker_or_named_to_keep_stay(tmp_path: Path):
    kept = OwnedFolder.make(WORKDIR_PREFIX, tmp_path)
    kept.disown()  # what a failed run does with its workdir
    user_named = tmp_path / f"{WORKDIR_PREFIX}mine"
    user_named.mkdir()
    to_keep, other_name = left_by_a_killed_owner(tmp_path, POD_ROOT_PREFIX, "results-")
    link = tmp_path / f"{POD_ROOT_PREFIX}link"
    link.symlink_to(to_keep)
    assert remove_abandoned(tmp_path, keep=[to_keep]) == []
    assert all(p.exists() for p in (kept.path, user_named, to_keep, link, other_name))
    assert remove_abandoned(tmp_path) == [to_keep]  # abandoned: only the keep saved it


def test_a_workdir_the_user_names_loses_a_dead_sandboxs_marker(tmp_path: Path):
    [reused] = left_by_a_killed_owner(tmp_path, WORKDIR_PREFIX)
    disown(reused)  # a new sandbox is started with --workdir naming it
    assert remove_abandoned(tmp_path) == []
    assert reused.is_dir()
