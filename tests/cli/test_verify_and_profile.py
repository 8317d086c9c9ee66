"""`driftline-verify` outside a Job, and `driftline profile`'s digest in a ModelVersion."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from driftline.api.manifests import check_manifest, parse
from driftline.api.modelversion import ModelVersion
from driftline.cli import main
from driftline.render.settings import RenderSettings
from driftline.render.verification import render_verification_job

from .helpers import clean_environment, run

VERIFY = [sys.executable, "-m", "driftline_serving.verify"]
HOST_TERMINATION_LOG = Path("/dev/termination-log")


def file_state(path: Path) -> tuple[bool, int | None]:
    return (path.exists(), path.stat().st_mtime_ns if path.exists() else None)


def test_verify_with_no_arguments_prints_usage_and_writes_nothing(tmp_path):
    # Before: it wrote a BadConfiguration result to /dev/termination-log on the host.
    before = file_state(HOST_TERMINATION_LOG)
    done = run(VERIFY, env=clean_environment(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: driftline-verify")
    assert "--model-uri" in done.stderr
    assert "/dev/termination-log" not in done.stderr  # no attempt to write it either
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert file_state(HOST_TERMINATION_LOG) == before
    assert list(tmp_path.iterdir()) == []


def test_the_rendered_job_names_the_termination_log_it_reads(tmp_path):
    """The Job passes the path it reads the result from; the command writes exactly there."""
    model_version = ModelVersion.model_validate(
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "churn-v1", "namespace": "ml", "uid": "u-1"},
            "spec": {
                "model": "churn",
                "version": "1",
                # nothing listens on the discard port: the fetch fails at once
                "artifact": {"uri": "http://127.0.0.1:9/absent.onnx", "sha256": "0" * 64},
            },
        }
    )
    owner = {"apiVersion": "driftline.io/v1alpha1", "kind": "ModelVersion"}
    owner["metadata"] = model_version.metadata
    job = render_verification_job(owner, model_version, RenderSettings())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DRIFTLINE_TERMINATION_LOG"] == container["terminationMessagePath"]

    # the container's own environment, with its paths moved under tmp_path
    log = tmp_path / "termination-log"
    env |= {"DRIFTLINE_TERMINATION_LOG": str(log), "DRIFTLINE_ARTIFACT_DIR": str(tmp_path / "a")}
    done = run(VERIFY, env=clean_environment(tmp_path, **env))
    assert done.returncode == 1, done.stderr  # refused: the artifact is not there
    assert json.loads(log.read_text())["reason"] == "FetchFailed"


def test_profile_prints_the_digest_a_modelversion_takes_as_is(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps([{"name": "x", "type": "numeric"}]))
    data = tmp_path / "train.npz"
    np.savez(data, x=np.random.default_rng(3).normal(size=500))
    profile = tmp_path / "ref.npz"
    result = CliRunner().invoke(
        main, ["profile", str(data), "--schema", str(schema), "-o", str(profile), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    assert printed == hashlib.sha256(profile.read_bytes()).hexdigest()
    manifest = {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "churn-v1", "namespace": "ml"},
        "spec": {
            "model": "churn",
            "version": "1",
            "artifact": {"uri": "s3://models/churn.onnx", "sha256": "a" * 64},
            "reference": {"uri": "s3://models/ref.npz", "sha256": printed},
        },
    }
    stored, errors = check_manifest(manifest)
    assert errors == []
    assert parse(stored).spec.reference.sha256 == printed  # type: ignore[union-attr]
    assert os.fspath(profile) in result.stderr
