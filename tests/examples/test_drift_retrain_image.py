"""examples/drift-retrain/Dockerfile, read (Docker is not available here): the build
context holds what the build copies, the base is the project's pinned one, the final
stage runs the program as a numeric non-root user, and the image's data file is the one
the DriftPolicy's Job trains on."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.examples.conftest import DRIFT_RETRAIN, REPO
from tests.test_packaging import copy_sources, dockerignore_keeps, parse_dockerfile

DOCKERFILE = DRIFT_RETRAIN / "Dockerfile"
ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())
FINAL = STAGES[-1]


def build_context() -> list[str]:
    lines = (line.strip() for line in (DRIFT_RETRAIN / "Dockerfile.dockerignore").open())
    patterns = [line for line in lines if line and not line.startswith("#")]
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [path for path in files if dockerignore_keeps(patterns, path)]


def test_every_copy_is_in_the_context_and_the_context_is_only_that() -> None:
    context = build_context()
    sources = [source.rstrip("/") for stage in STAGES for source in copy_sources(stage)]
    for source in sources:
        assert any(p == source or p.startswith(source + "/") for p in context), source
    stray = [p for p in context if not any(p == s or p.startswith(s + "/") for s in sources)]
    assert stray == []
    assert not any(p.startswith(("tests/", "bench/", "charts/")) for p in context)


def test_the_base_is_the_pinned_base_of_the_projects_images() -> None:
    serving_args, _ = parse_dockerfile((REPO / "serving-image" / "Dockerfile").read_text())
    assert {stage.image for stage in STAGES} == {serving_args["PYTHON_IMAGE"]}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", FINAL.image)


def test_the_final_stage_runs_the_program_as_a_non_root_user() -> None:
    (user,) = FINAL.arguments("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert copy_sources(FINAL) == []  # only what the build stage made
    (entrypoint,) = FINAL.arguments("ENTRYPOINT")
    assert entrypoint == '["/opt/driftline/bin/python", "/opt/churn/retrain.py"]'


def test_the_job_trains_on_the_window_the_image_ships_as_the_images_user() -> None:
    build = next(stage for stage in STAGES if stage.name == "build")
    made = re.findall(r"--output (\S+)", " ".join(build.arguments("RUN")))
    (policy,) = yaml.safe_load_all((DRIFT_RETRAIN / "driftpolicy.yaml").read_text())
    pod = policy["spec"]["retraining"]["jobTemplate"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--data") + 1] in made
    (user,) = FINAL.arguments("USER")
    assert str(pod["securityContext"]["runAsUser"]) == user.partition(":")[0]
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
