"""Shared test configuration."""

from __future__ import annotations

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
