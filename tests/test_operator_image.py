"""The operator image: operator/Dockerfile and its Dockerfile.dockerignore.

Docker is not available here, so these read the files with the same reader as the
serving image's checks (tests/test_packaging.py):

- the build context (the repository root, filtered by the dockerignore) holds the
  control plane only: no serving-image/, tests/ or bench/;
- the base is pinned, and it is the serving image's own base;
- the final stage copies only the built venv, runs as a numeric non-root user, has no
  compilers, writes nothing at run time, has no HEALTHCHECK (Kubernetes probes kopf's
  /healthz) and runs `driftline operator`;
- a venv with only the `operator` extra, installed (not editable) from exactly the
  context the Dockerfile copies, runs the operator without kmock, onnxruntime or numpy,
  and every console script the image keeps answers --help.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from tests.test_packaging import Stage, copy_sources, dockerignore_keeps, parse_dockerfile

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "operator" / "Dockerfile"
DOCKERIGNORE = ROOT / "operator" / "Dockerfile.dockerignore"
SERVING_DOCKERFILE = ROOT / "serving-image" / "Dockerfile"

ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
STAGE_NAMES = {stage.name for stage in STAGES if stage.name}
FINAL = STAGES[-1]
BUILD = next(stage for stage in STAGES if stage.name == "build")
NOT_IN_THE_OPERATOR_IMAGE = ("serving-image", "tests", "bench")


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def repository_files() -> list[str]:
    return subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def build_context() -> list[str]:
    """The repository files BuildKit sends for operator/Dockerfile."""
    patterns = dockerignore_patterns()
    return [path for path in repository_files() if dockerignore_keeps(patterns, path)]


def under(path: str, source: str) -> bool:
    source = source.rstrip("/")
    return path == source or path.startswith(source + "/")


def removed_scripts(stage: Stage) -> set[str]:
    """The venv's bin/ entries that the stage's RUNs delete (`rm -f /opt/driftline/bin/X`)."""
    runs = " ".join(stage.arguments("RUN"))
    return set(re.findall(r"/opt/driftline/bin/([\w-]+)(?=\s|$)", runs)) - {"pip", "python"}


# --- the Dockerfile, read -------------------------------------------------------------


def test_the_dockerfile_has_a_build_stage_and_a_final_operator_stage():
    assert [stage.name for stage in STAGES] == ["build", "operator"]
    assert copy_sources(FINAL) == []  # the final stage copies from `build` only
    assert FINAL.arguments("COPY") == ["--from=build /opt/driftline /opt/driftline"]


def test_the_build_context_holds_no_data_plane_tests_or_benchmarks():
    context = build_context()
    assert "pyproject.toml" in context and "README.md" in context
    assert any(p.startswith("operator/driftline/handlers/") for p in context)
    assert any(p.startswith("vocabulary/driftline_vocabulary/") for p in context)
    assert "operator/Dockerfile" not in context  # nothing but what the build copies
    leaked = [p for p in context if p.split("/")[0] in NOT_IN_THE_OPERATOR_IMAGE]
    assert leaked == []
    # ...and the dockerignore itself says so, not only the files that exist today
    patterns = dockerignore_patterns()
    for folder in NOT_IN_THE_OPERATOR_IMAGE:
        assert not dockerignore_keeps(patterns, f"{folder}/anything.py"), folder


def test_each_copy_is_in_the_context_and_brings_no_data_plane():
    context = build_context()
    sources = [source for stage in STAGES for source in copy_sources(stage)]
    assert sources, "the build stage copies the sources"
    for source in sources:
        path = source.rstrip("/")
        assert path != "." and path.split("/")[0] not in NOT_IN_THE_OPERATOR_IMAGE, source
        assert any(under(p, path) for p in context), f"COPY {source}: not in the context"


def test_the_base_is_pinned_and_is_the_serving_images_base():
    serving_args, _ = parse_dockerfile(SERVING_DOCKERFILE.read_text())
    for stage in STAGES:
        assert stage.image not in STAGE_NAMES  # both stages start from the base itself
        assert stage.image == serving_args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", FINAL.image)


def test_the_build_stage_installs_the_operator_extra_only():
    installs = [run for run in BUILD.arguments("RUN") if "pip install" in run]
    assert len(installs) == 1
    assert re.findall(r'"/src\[([^\]]*)\]"', installs[0]) == ["operator"]
    assert "compileall" in installs[0]  # bytecode at build time, not on a read-only root


def test_the_final_stage_runs_unprivileged_without_compilers_or_healthcheck():
    users = FINAL.arguments("USER")
    assert users and re.fullmatch(r"\d+(:\d+)?", users[-1])  # numeric: runAsNonRoot can check it
    assert users[-1].split(":")[0] != "0"
    runs = " ".join(FINAL.arguments("RUN"))
    assert not re.search(
        r"\b(gcc|g\+\+|clang|build-essential|make|python3-dev|pip install|apt-get install)\b",
        runs,
    )
    assert FINAL.arguments("HEALTHCHECK") == []
    assert json.loads(FINAL.arguments("ENTRYPOINT")[-1]) == ["driftline", "operator"]


def test_the_final_stage_writes_nothing_at_run_time_and_exposes_the_operator_ports():
    env = " ".join(FINAL.arguments("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert re.search(r"\bHOME=/tmp\b", env)  # the one writable place: an emptyDir
    from driftline.operator import build_parser

    defaults = build_parser().parse_args([])
    exposed = {int(port) for rest in FINAL.arguments("EXPOSE") for port in rest.split()}
    assert exposed == {defaults.liveness_port, defaults.metrics_port} == {8081, 9102}
    docs = (ROOT / "docs" / "images.md").read_text()
    # built from the repository root: the context is `.`
    assert re.search(r"^docker build -f operator/Dockerfile .* \.$", docs, re.MULTILINE)
    assert re.search(
        r"^#\s+docker build -f operator/Dockerfile .* \.$", DOCKERFILE.read_text(), re.M
    )
    for fact in ("8081", "9102", "/healthz", "emptyDir", "readOnlyRootFilesystem"):
        assert fact in docs, fact


def test_the_scripts_the_image_removes_are_console_scripts_of_the_distribution():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    removed = removed_scripts(BUILD)
    assert removed and removed <= set(scripts)
    assert "driftline" not in removed


# --- the install ----------------------------------------------------------------------


@pytest.mark.timeout(600)  # about 15 s from the local wheel index
def test_the_operator_extra_alone_runs_the_operator(tmp_path):
    # exactly what the build stage copies, as the context sends it, installed as the
    # image does (not editable), with the operator extra only
    context = tmp_path / "context"
    sent = build_context()
    for source in copy_sources(BUILD):
        for path in sent:
            if under(path, source):
                target = context / path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-compile", f"{context}[operator]"],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    probe = textwrap.dedent(
        """
        import importlib.util, json
        import driftline.operator, driftline.handlers.register
        print(json.dumps({
            name: importlib.util.find_spec(name) is not None
            for name in ("kopf", "kubernetes", "prometheus_client", "driftline_vocabulary",
                         "kmock", "onnxruntime", "numpy", "driftline_serving")
        }))
        """
    )
    # run away from the repository, so that nothing is imported from the source tree
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout) == {
        "kopf": True,
        "kubernetes": True,
        "prometheus_client": True,
        "driftline_vocabulary": True,
        "kmock": False,
        "onnxruntime": False,
        "numpy": False,
        "driftline_serving": False,
    }
    for command in (
        [str(venv / "bin" / "driftline"), "operator", "--help"],  # the image's entry point
        [str(python), "-m", "driftline.operator", "--help"],
    ):
        help_ = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert help_.returncode == 0, help_.stderr[-4000:]
        assert "--liveness-port" in help_.stdout and "--metrics-port" in help_.stdout
    # every console script the image keeps works; the ones it removes would not
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    removed = removed_scripts(BUILD)
    for name in scripts:
        run = subprocess.run(
            [str(venv / "bin" / name), "--help"], capture_output=True, text=True, cwd=tmp_path
        )
        assert (run.returncode == 0) == (name not in removed), (name, run.stderr[-2000:])
