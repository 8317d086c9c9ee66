"""The real `helm` binary for the chart tests: found, run, and its output parsed.

Helm is the pinned one that .ci/install-helm puts at .tools/helm, else the first on
PATH. Where there is none the tests skip with HELM_MISSING, which tests/conftest.py turns
into a failure under CI=true (.ci/run installs it, so a skip there means a broken
install). Helm reads no user configuration or repositories here: every run gets its
own empty HELM_*_HOME folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "driftline"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM_MISSING = (
    "the helm binary is not installed (run .ci/install-helm, which puts the pinned helm "
    "at .tools/helm, or put helm on PATH)"
)
PROMTOOL_MISSING = (
    "the promtool binary is not installed (Debian: apt-get install -y prometheus); "
    "it checks the chart's alert rules and dashboard queries"
)


def find_helm() -> str | None:
    """$DRIFTLINE_HELM when set (a path; one that is not an executable means none), else
    .tools/helm, else helm on PATH."""
    chosen = os.environ.get("DRIFTLINE_HELM")
    if chosen is not None:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    pinned = ROOT / ".tools" / "helm"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return str(pinned)
    return shutil.which("helm")


def require_helm() -> str:
    helm = find_helm()
    if helm is None:
        pytest.skip(HELM_MISSING)
    return helm


def require_promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(PROMTOOL_MISSING)
    return promtool


def helm_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    environment = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    environment.pop("KUBECONFIG", None)
    return {**environment, **(extra or {})}


def run_helm(
    args: Sequence[str], home: Path, *, env: Mapping[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """helm with `args`; the completed process, whatever its exit status."""
    return subprocess.run(
        [require_helm(), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=helm_environment(home, env),
        cwd=ROOT,
    )


def template_args(values: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    args = ["template", "driftline", str(CHART), "--namespace", "driftline-system"]
    args += ["--include-crds"]
    for path in values:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def render(
    home: Path, values: Sequence[Path] = (), sets: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The chart's objects as `helm template` renders them (CRDs included)."""
    done = run_helm(template_args(values, sets), home)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matching = [
        obj for obj in by_kind(objects, kind) if name is None or obj["metadata"]["name"] == name
    ]
    assert len(matching) == 1, f"{len(matching)} {kind} named {name}: {matching}"
    return matching[0]


def walk_schema(schema: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema of a JSON schema, with where it is."""
    if isinstance(schema, dict):
        yield path, schema
        for key, value in schema.items():
            if key in ("properties", "patternProperties"):
                for name, sub in value.items():
                    yield from walk_schema(sub, f"{path}.{name}")
            elif key in ("items", "additionalProperties"):
                yield from walk_schema(value, f"{path}[{key}]")
