"""The package boundaries, read from the source with `ast` (nothing is imported).

- The data plane (`driftline_serving`) never imports the control plane (`driftline`):
  the serving image installs neither it nor its dependencies.
- What both share lives in `driftline_vocabulary`, which needs only the standard library.
- The pure core (resource models, rendering, decisions, rollout, conditions) imports no
  Kubernetes client, no kopf, no HTTP stack, and none of the shell that uses them,
  directly or through another of our modules: deciding stays testable without a cluster.
- The control plane reaches the drift engine only from the offline drift commands.

Imports under `if TYPE_CHECKING:` are skipped (they never run); imports inside
functions count, since they run when the function does.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = {
    "driftline": ROOT / "operator",
    "driftline_serving": ROOT / "serving-image",
    "driftline_vocabulary": ROOT / "vocabulary",
}
PURE_CORE = (
    "driftline.api",
    "driftline.render",
    "driftline.reconcile",
    "driftline.rollout",
    "driftline.conditions",
    "driftline.driftstatus",
    "driftline.vocabulary",
)
# third-party packages and our own shell modules that the pure core must not reach
NOT_IN_PURE_CORE = (
    "kopf",
    "kubernetes",
    "kmock",
    "aiohttp",
    "urllib3",
    "driftline.handlers",
    "driftline.apiserver",
    "driftline.operator",
    "driftline.cli",
    "driftline_serving",
)


def module_files() -> dict[str, Path]:
    """Every module of our three packages: dotted name -> source file."""
    modules: dict[str, Path] = {}
    for package, root in SOURCE_ROOTS.items():
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def imports_of(module: str) -> set[str]:
    """The absolute names `module` imports: for `from a.b import c`, both `a.b` and
    `a.b.c` (c may be a submodule; a name that is not one matches nothing below)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def reachable(start: str) -> dict[str, str]:
    """Every name imported from `start` or from our modules it imports, transitively,
    mapped to the module of ours that imports it (to name the culprit)."""
    found: dict[str, str] = {}
    pending = [start]
    seen = {start}
    while pending:
        module = pending.pop()
        for name in sorted(imports_of(module)):
            found.setdefault(name, module)
            # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                if prefix in MODULES and prefix not in seen:
                    seen.add(prefix)
                    pending.append(prefix)
    return found


def modules_under(package: str) -> list[str]:
    return [m for m in MODULES if is_within(m, package)]


def test_the_source_tree_is_where_this_test_looks():
    # a moved package must not make every check below pass vacuously
    assert "driftline_serving.server.app" in MODULES
    assert "driftline.api.driftpolicy" in MODULES
    assert "driftline_vocabulary.drift" in MODULES
    assert {"driftline_serving.drift", "numpy"} <= set(reachable("driftline.cli.drift"))


@pytest.mark.parametrize("module", modules_under("driftline_serving"))
def test_the_data_plane_does_not_import_the_control_plane(module):
    offending = sorted(name for name in imports_of(module) if is_within(name, "driftline"))
    assert offending == [], f"{module} imports {offending}"


@pytest.mark.parametrize("module", modules_under("driftline_vocabulary"))
def test_the_shared_vocabulary_needs_only_the_standard_library(module):
    outside = sorted(
        name
        for name in imports_of(module)
        if name.split(".")[0] not in sys.stdlib_module_names
        and not is_within(name, "driftline_vocabulary")
    )
    assert outside == [], f"{module} imports {outside}"


@pytest.mark.parametrize("module", [m for core in PURE_CORE for m in modules_under(core)])
def test_the_pure_core_reaches_no_client_and_no_shell(module):
    offending = {
        name: via
        for name, via in reachable(module).items()
        if any(is_within(name, forbidden) for forbidden in NOT_IN_PURE_CORE)
    }
    assert offending == {}, f"{module} reaches (imported name: importing module) {offending}"


def test_the_control_plane_reaches_the_drift_engine_only_from_the_drift_commands():
    importers = sorted(
        module
        for module in modules_under("driftline")
        if any(is_within(name, "driftline_serving") for name in imports_of(module))
    )
    # the sandbox runs both planes on one machine: its story makes the bundled example
    # (driftline_serving.examples) on the spot
    assert importers == ["driftline.cli.drift", "driftline.sandbox.example"]
    # and `driftline.cli` itself imports its subcommands only when one runs
    assert not any(
        is_within(name, "driftline_serving") or is_within(name, "driftline.cli.drift")
        for name in reachable("driftline.cli")
    )


def test_the_checks_see_a_violation():
    # the walker itself: a nested import counts, a TYPE_CHECKING one does not
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import kopf\n"
        "def f():\n    import kubernetes.client\n"
    )
    names = {alias.name for node in _import_nodes(tree) for alias in node.names}
    assert names == {"TYPE_CHECKING", "kubernetes.client"}


# What each extra must cover: the modules its commands start from. A plain install (the
# core) runs `driftline crds` and `driftline validate`.
EXTRA_ENTRY_POINTS = {
    "": ("driftline.cli", "driftline.cli.crds", "driftline.cli.validate"),
    "operator": ("driftline.cli.run_operator", "driftline.operator", "driftline.handlers.register"),
    "apiserver": ("driftline.apiserver", "driftline.apiserver.cli"),
    "serving": (
        "driftline_serving.server.cli",
        "driftline_serving.evaluator.cli",
        "driftline_serving.verify",
        "driftline.cli.drift",
    ),
    "s3": ("driftline_serving.artifacts",),
    "rollout": ("driftline.cli.rollout", "driftline.cli.rollout_plugin"),
}
# imports that another declared distribution provides by contract
PART_OF = {"pydantic_core": "pydantic"}
# imports reached only by a feature of another extra (the import is guarded there)
NEEDED_ONLY_BY = {"obstore": "s3", "kubernetes_validate": "dev"}  # dev: regenerating stored schemas


def _canonical(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def declared_distributions(extra: str) -> set[str]:
    """The distributions `pip install 'driftline[extra]'` asks for (core included),
    following the extras that name driftline itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    names: set[str] = set()
    pending, seen = [*project["dependencies"], *optional.get(extra, [])], set()
    while pending:
        requirement = pending.pop()
        name = _canonical(requirement)
        if name != "driftline":
            names.add(name)
            continue
        for nested in re.findall(r"\[(.*?)\]", requirement)[0].split(","):
            if nested.strip() not in seen:
                seen.add(nested.strip())
                pending.extend(optional[nested.strip()])
    return names


@pytest.mark.parametrize("extra", sorted(EXTRA_ENTRY_POINTS))
def test_each_extra_installs_what_its_commands_import(extra):
    ours = {"driftline", "driftline_serving", "driftline_vocabulary"}
    providers = importlib.metadata.packages_distributions()
    needed: dict[str, str] = {}
    for start in EXTRA_ENTRY_POINTS[extra]:
        for name, via in reachable(start).items():
            top = name.split(".")[0]
            if top in ours or top in sys.stdlib_module_names:
                continue
            if NEEDED_ONLY_BY.get(top, extra) == extra:
                needed.setdefault(PART_OF.get(top, top), via)
    declared = declared_distributions(extra)
    missing = {
        top: via
        for top, via in needed.items()
        if not {_canonical(d) for d in providers.get(top, [])} & declared
    }
    assert missing == {}, f"driftline[{extra}] lacks (import: imported by) {missing}"


def test_a_plain_install_is_the_offline_core_only():
    # `pip install driftline` must not bring the operator's or the data plane's weight
    assert declared_distributions("").isdisjoint(
        {"kopf", "kmock", "kubernetes", "numpy", "scipy", "onnxruntime", "aiohttp"}
    )
    # and the serving extra brings none of the control plane
    assert declared_distributions("serving").isdisjoint({"kopf", "kmock"})


def test_the_severity_order_is_defined_once():
    # the order lives in Severity's members; a second spelled-out order would drift apart
    order = ["None", "Low", "Medium", "High"]
    spelled_out = sorted(
        module
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Tuple | ast.List)
        and [getattr(e, "value", None) for e in node.elts] == order
    )
    assert spelled_out == []
    from driftline_vocabulary.drift import Severity

    assert [s.value for s in sorted(Severity, key=lambda s: s.rank)] == order


def test_no_test_only_module_in_the_data_plane():
    # example models are named as examples, and the product itself never needs them
    # test helpers live in tests/, never in the product
    assert [m for m in MODULES if m.rpartition(".")[2].startswith("testing")] == []
    product = ("driftline_serving.server", "driftline_serving.evaluator", "driftline_serving.drift")
    for module in [m for start in product for m in modules_under(start)]:
        reached = reachable(module)
        assert not any(is_within(n, "driftline_serving.examples") for n in reached), module
        assert not any(is_within(n, "pytest") for n in reached), module
    assert "driftline_serving.examples.models" in MODULES
