"""The pure analysis modules stay pure: the standard library, the resource models, each
other, and prometheus_client's text parser (the operator extra has it). No numpy or scipy
(the operator image has neither), no HTTP, no Kubernetes client, no kopf.

Read from the source with `ast`, as tests/test_import_structure.py does."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "driftline" / "analysis"
PURE_MODULES = ("__init__", "types", "templating", "reduction", "gates", "builtin", "divergence")
ALLOWED_THIRD_PARTY = ("prometheus_client.parser",)
ALLOWED_OURS = ("driftline.api", "driftline.analysis")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.add(node.module or "")
    return names


def allowed(name: str) -> bool:
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names:
        return True
    return any(
        name == prefix or name.startswith(prefix + ".")
        for prefix in (*ALLOWED_THIRD_PARTY, *ALLOWED_OURS)
    )


def test_every_pure_module_is_checked() -> None:
    present = {path.stem for path in PACKAGE.glob("*.py")}
    assert set(PURE_MODULES) <= present


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_module_imports_only_what_the_operator_has_and_nothing_impure(module: str) -> None:
    names = imported(PACKAGE / f"{module}.py")
    assert not [name for name in names if not allowed(name)]
    # the providers do I/O; the pure modules never reach them
    assert not [name for name in names if name.startswith("driftline.analysis.providers")]
    assert not {"socket", "urllib", "http", "asyncio", "time", "subprocess"} & {
        name.partition(".")[0] for name in names
    }
