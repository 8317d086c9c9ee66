"""The shared test helpers in tests/support.py, and the rules they exist for."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.support import stable_seed

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
