"""The shared test helpers in tests/support.py, and the rules they exist for."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import free_port, stable_seed, wait_until, wait_until_async

ROOT = Path(__file__).resolve().parent.parent


def test_stable_seeds_do_not_depend_on_pythonhashseed():
    code = "from tests.support import stable_seed; print(stable_seed('normal', 0.03, 20000))"
    seeds = set()
    for hash_seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        seeds.add(int(result.stdout))
    assert seeds == {stable_seed("normal", 0.03, 20000)}
    assert 0 <= stable_seed("x") < 2**32
    assert stable_seed("normal", 0.03, 20000) != stable_seed("normal", 0.1, 20000)


def test_no_test_seeds_from_hash():
    # hash() of a str changes with PYTHONHASHSEED: a seed from it cannot be replayed
    offending = []
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "hash"
                ):
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offending == []


def test_free_port_gives_a_port_one_can_listen_on():
    port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert listener.getsockname()[1] == port


def test_wait_until_returns_the_first_truthy_value_and_retries_ignored_errors():
    calls = iter([ValueError("not yet"), 0, None, "done"])

    def condition():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(condition, timeout_s=10, interval_s=0, ignore=(ValueError,)) == "done"


def test_wait_until_fails_at_the_deadline_naming_what_and_the_last_value():
    with pytest.raises(AssertionError, match=r"waiting for the answer; last: \[\]"):
        wait_until(list, 0, what="the answer", interval_s=0)


async def test_wait_until_async_runs_a_blocking_condition_in_a_thread():
    loop_thread = threading.get_ident()
    seen = []

    def condition():
        seen.append(threading.get_ident())
        return len(seen) >= 2

    assert await wait_until_async(condition, timeout_s=10, interval_s=0, in_thread=True)
    assert loop_thread not in seen
    with pytest.raises(AssertionError, match="waiting for nothing"):
        await wait_until_async(lambda: None, 0, what="nothing")


WAITERS = {"wait_for", "wait_until", "eventually", "poll"}


def test_helpers_are_written_once():
    # a module-level free-port or polling helper in a test module is a copy of one in
    # tests/support.py; a local name with other keywords may stay as an adapter to it
    offending = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.name == "support.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = {
                call.func.id
                for call in ast.walk(node)
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            }
            if node.name == "free_port" or (
                node.name in WAITERS and not calls & {"wait_until", "wait_until_async"}
            ):
                offending.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert offending == []
