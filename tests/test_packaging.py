"""What each install and each image carries.

- The serving image's Dockerfile and its .dockerignore: the build context holds no
  control plane, bases are pinned, the final stages run as a non-root user with no
  compilers, the default image has the s3 extra, and a GPU target exists (docker is not
  available here, so these read the files).
- A venv with only the `serving` extra, installed (not editable) from exactly what the
  Dockerfile copies, runs the data plane without kopf, kmock, or `driftline`.
- Without the serving extra, `driftline crds` works and the drift commands say what is
  missing instead of a traceback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "serving-image" / "Dockerfile"
DOCKERIGNORE = ROOT / "serving-image" / "Dockerfile.dockerignore"


# --- the Dockerfile, read -------------------------------------------------------------


@dataclass
class Stage:
    image: str  # as written, ${ARG}s resolved
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) with continuation lines joined and ${ARG} resolved
    from the ARG defaults (global ones, redeclared in a stage by `ARG NAME`)."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip()
            continue
        rest = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), rest)
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            stages[-1].instructions.append((word, rest))
    return global_args, stages


def copy_sources(stage: Stage) -> list[str]:
    """What the stage's COPY/ADD instructions take from the build context."""
    sources = []
    for word in ("COPY", "ADD"):
        for rest in stage.arguments(word):
            parts = [p for p in rest.split() if not p.startswith("--")]
            if any(p.startswith("--from") for p in rest.split()):
                continue
            sources.extend(parts[:-1])
    return sources


def dockerignore_keeps(patterns: list[str], path: str) -> bool:
    """Whether BuildKit sends `path` (relative to the context root): the last pattern
    matching the path or one of its parent folders decides; `!` re-includes."""
    keep = True
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = (
            re.escape(body)
            .replace(r"\*\*/", "(?:.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            keep = negated
    return keep


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_context() -> list[str]:
    """The repository files BuildKit sends for this Dockerfile."""
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    patterns = dockerignore_patterns()
    return [path for path in tracked if dockerignore_keeps(patterns, path)]


ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
STAGE_NAMES = {stage.name for stage in STAGES if stage.name}
FINAL_STAGES = [STAGES[-1], *(s for s in STAGES if s.name == "gpu")]


def test_the_dockerfile_reader_sees_the_stages():
    assert len(STAGES) >= 2 and STAGES[-1].name == "cpu"
    assert copy_sources(STAGES[-1]) == []  # the final stage copies only from `build`


def test_the_dockerignore_reader_follows_buildkit_rules():
    patterns = ["**", "!keep/", "**/__pycache__"]
    assert dockerignore_keeps(patterns, "keep/a/b.py")
    assert not dockerignore_keeps(patterns, "other/a.py")
    assert not dockerignore_keeps(patterns, "keep/a/__pycache__/b.pyc")


def test_the_build_context_holds_no_control_plane():
    context = build_context()
    assert "pyproject.toml" in context
    assert any(p.startswith("serving-image/driftline_serving/") for p in context)
    assert any(p.startswith("vocabulary/driftline_vocabulary/") for p in context)
    assert [p for p in context if p.startswith(("operator/", "tests/", "bench/"))] == []


def test_no_copy_brings_the_control_plane_and_each_source_is_in_the_context():
    context = build_context()
    for stage in STAGES:
        for source in copy_sources(stage):
            path = source.rstrip("/")
            assert path not in (".", "operator") and not path.startswith("operator/"), source
            assert any(p == path or p.startswith(path + "/") for p in context), (
                f"{stage.name}: COPY {source} but the .dockerignore leaves it out"
            )


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name or s.image)
def test_every_base_image_is_pinned(stage):
    if stage.image in STAGE_NAMES:
        return
    assert "$" not in stage.image, f"unresolved {stage.image}"
    pinned_tag = re.search(r":[^/@]*\d+\.\d+\.\d+[^/@]*(@sha256:[0-9a-f]{64})?$", stage.image)
    assert pinned_tag or "@sha256:" in stage.image, f"{stage.image} is not pinned"


def test_the_cpu_image_is_python_3_11_slim_bookworm():
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", STAGES[-1].image)


@pytest.mark.parametrize("stage", FINAL_STAGES, ids=lambda s: s.name)
def test_final_stages_run_unprivileged_without_compilers(stage):
    users = stage.arguments("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")
    runs = " ".join(stage.arguments("RUN"))
    assert not re.search(
        r"\b(gcc|g\+\+|clang|build-essential|make|python3-dev|pip install)\b", runs
    )
    assert json.loads(stage.arguments("ENTRYPOINT")[-1]) == ["driftline-serve"]
    env = " ".join(stage.arguments("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # nothing written beside the code
    assert "DRIFTLINE_ARTIFACT_DIR=/tmp/" in env  # downloads go to the writable /tmp


def test_the_default_image_installs_the_serving_and_s3_extras():
    build = next(s for s in STAGES if s.name == "build")
    installs = [r for r in build.arguments("RUN") if "pip install" in r]
    assert installs and '"/src[serving,s3]"' in installs[0]  # ${EXTRAS}, resolved
    assert "ARG EXTRAS" in DOCKERFILE.read_text()  # and overridable


def test_a_gpu_target_installs_onnxruntime_gpu_on_cuda():
    gpu_build = next(s for s in STAGES if s.name == "gpu-build")
    assert gpu_build.image.startswith("nvidia/cuda:") and "runtime" in gpu_build.image
    runs = " ".join(gpu_build.arguments("RUN"))
    assert "pip uninstall -y onnxruntime" in runs and "onnxruntime-gpu==" in runs
    assert "--target gpu" in (ROOT / "serving-image" / "README.md").read_text()


# --- installs -------------------------------------------------------------------------

FORBIDDEN_IN_DATA_PLANE = ("kopf", "kmock", "kubernetes", "driftline")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_serving_extra_alone_runs_the_data_plane(tmp_path):
    # exactly what the image's build stage copies, installed as the image does (not
    # editable), with the serving extra only
    context = tmp_path / "context"
    build = next(s for s in STAGES if s.name == "build")
    for source in copy_sources(build):
        origin = ROOT / source
        target = context / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-compile", f"{context}[serving]"],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    probe = textwrap.dedent(
        """
        import importlib.util, json, sys
        import driftline_serving, driftline_serving.server.app, driftline_serving.server.cli
        import driftline_serving.evaluator.app, driftline_serving.drift, driftline_serving.verify
        import driftline_serving.sampling.sampler, driftline_serving.artifacts
        loaded = sorted({m.split(".")[0] for m in sys.modules})
        installed = {
            name: importlib.util.find_spec(name) is not None
            for name in ("kopf", "kmock", "driftline", "kubernetes", "numpy")
        }
        import driftline_serving.evaluator.cli  # the sidecar: the Kubernetes client, no kopf
        sidecar = sorted({m.split(".")[0] for m in sys.modules})
        print(json.dumps({"loaded": loaded, "installed": installed, "sidecar": sidecar}))
        """
    )
    # run away from the repository, so that nothing is imported from the source tree
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-4000:]
    seen = json.loads(result.stdout)
    assert [m for m in seen["loaded"] if m in FORBIDDEN_IN_DATA_PLANE] == []
    assert seen["installed"] == {
        "kopf": False,
        "kmock": False,
        "driftline": False,
        "kubernetes": True,
        "numpy": True,
    }
    assert [m for m in seen["sidecar"] if m in ("kopf", "kmock", "driftline")] == []
    serve = subprocess.run(
        [str(venv / "bin" / "driftline-serve"), "--help"], capture_output=True, text=True
    )
    assert serve.returncode == 0 and "--model-uri" in serve.stdout


def run_cli_without(modules: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """`driftline ARGS` in a process where importing any of `modules` fails, as in an
    install without the extra that provides them."""
    code = (
        "import sys\n"
        f"for name in {modules!r}: sys.modules[name] = None\n"
        "from driftline.cli import main\n"
        f"main({list(args)!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


SERVING_AND_OPERATOR = ("numpy", "scipy", "pyarrow", "onnx", "onnxruntime", "tqdm", "kopf", "kmock")


def test_the_offline_commands_run_without_the_extras():
    result = run_cli_without(SERVING_AND_OPERATOR, "crds", "--summary")
    assert result.returncode == 0, result.stderr
    assert "ModelDeployment" in result.stdout


def test_the_drift_commands_name_the_missing_extra(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text('[{"name": "x", "type": "numeric"}]')
    for args in (
        ("profile", str(tmp_path / "data.csv"), "--schema", str(schema), "-o", "p"),
        ("drift", "evaluate", "window.csv", "--profile", str(schema)),
    ):
        result = run_cli_without(SERVING_AND_OPERATOR, *args)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "pip install 'driftline[serving]'" in result.stderr
