"""Shared test configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# No timing thresholds in tests: hypothesis' default 200 ms deadline per example says
# nothing about correctness and fails on a loaded machine.
settings.register_profile("driftline", deadline=None)
settings.load_profile("driftline")


# Tests that need a real service skip cleanly on a developer's machine without it, but CI
# installs every one of them (.ci/run): there, such a skip means a broken install and fails
# the run instead of passing silently with the test unrun.
# The kind end-to-end suite is not among them: CI has no Docker, and that skip is expected.
SERVICE_SKIPS = (
    "the prometheus binary is not installed",
    "the promtool binary is not installed",
    "the helm binary is not installed",
)
_service_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(SERVICE_SKIPS):
            _service_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _service_skips and os.environ.get("CI") == "true":
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"CI: {len(_service_skips)} test(s) skipped for a missing service:", red=True
            )
            for line in _service_skips[:20]:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
