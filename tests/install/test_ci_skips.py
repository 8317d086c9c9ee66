"""Without helm the chart tests skip on a developer's machine, and fail the run under
CI=true (.ci/run installs helm, so a skip there means a broken install)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.install.helm_support import HELM_MISSING, ROOT

# One test that needs helm, run in a pytest of its own with helm made unfindable.
ONE_HELM_TEST = (
    "tests/install/test_chart.py::test_the_cluster_role_holds_exactly_the_operator_rules"
)


def run_without_helm(ci: str | None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DRIFTLINE_HELM": str(ROOT / "no-such-helm")}
    environment.pop("CI", None)
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", ONE_HELM_TEST],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
        check=False,
    )


def test_a_missing_helm_is_a_clean_skip_outside_ci():
    done = run_without_helm(ci=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert HELM_MISSING[:40] in done.stdout


def test_a_missing_helm_fails_the_run_under_ci():
    done = run_without_helm(ci="true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skipped for a missing service" in done.stdout
    assert "test_the_cluster_role_holds_exactly_the_operator_rules" in done.stdout
