"""What works in a checkout must work from an installed package, run anywhere."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from .helpers import COMMAND_DEADLINE_S, DRIFTLINE, REPO_ROOT, run, wait_for

CRD_NAMES = {
    "modelversions.driftline.io",
    "modeldeployments.driftline.io",
    "driftpolicies.driftline.io",
}


def test_crds_check_outside_the_repository_says_there_is_no_crds_directory(tmp_path):
    # Before: "out of date in crds: ..." and exit 1, as if the CRDs were stale.
    done = run([*DRIFTLINE, "crds", "--check"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "no directory crds" in done.stderr
    assert "out of date" not in done.stderr
    assert "Traceback" not in done.stderr


def test_crds_check_takes_the_directory_to_check(tmp_path):
    done = run([*DRIFTLINE, "crds", "--check", str(REPO_ROOT / "crds")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    stale = tmp_path / "stale"
    shutil.copytree(REPO_ROOT / "crds", stale)
    (stale / "driftpolicies.driftline.io.yaml").write_text("# edited by hand\n")
    done = run([*DRIFTLINE, "crds", "--check", str(stale)], cwd=tmp_path)
    assert done.returncode == 1
    assert "out of date" in done.stderr and "driftpolicies.driftline.io.yaml" in done.stderr
    # an existing directory without any CRD file is a usage error, not "out of date"
    done = run([*DRIFTLINE, "crds", "--check", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2
    assert "no Driftline CRD files" in done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A regular (non-editable) install of this checkout into its own directory."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    # a copy: building in place would leave build/ and egg-info in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("operator", "serving-image"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=ignore)
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return site


def test_installed_apiserver_serves_the_crds_from_any_directory(installed, tmp_path):
    # Before: the CRDs were found only in a checkout's crds/; an installed package
    # served none.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed), "HOME": str(tmp_path)}
    where = run(
        [sys.executable, "-c", "import driftline, driftline_serving; print(driftline.__file__)"],
        env=env,
        cwd=elsewhere,
    )
    assert where.stdout.startswith(str(installed)), where  # the installed copy, not the checkout
    assert not list(installed.rglob("*.yaml"))  # no CRD files travel with the package

    process = subprocess.Popen(
        [*DRIFTLINE, "apiserver", "--port", "0", "--kubeconfig", str(kubeconfig)],
        env=env,
        cwd=elsewhere,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: kubeconfig.exists() or process.poll() is not None,
            timeout=COMMAND_DEADLINE_S,
            what="the kubeconfig",
        )
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        url = f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        with urllib.request.urlopen(url, timeout=30) as answer:
            served = {item["metadata"]["name"] for item in json.load(answer)["items"]}
        assert served == CRD_NAMES
        with urllib.request.urlopen(f"{server}/apis/driftline.io/v1alpha1", timeout=30) as answer:
            kinds = {r["kind"] for r in json.load(answer)["resources"]}
        assert {"ModelVersion", "ModelDeployment", "DriftPolicy"} <= kinds
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert "(3 CRDs)" in (process.stderr.read() if process.stderr else "")
