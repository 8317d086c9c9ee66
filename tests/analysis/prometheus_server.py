"""A real Prometheus server for tests: the `prometheus` binary (Debian package
``prometheus``) on loopback, scraping the targets a test names, every second.

Readiness is waited for on ``/-/ready`` and scrapes on ``up``, each with a deadline;
nothing sleeps for a guessed time. Tests that need the binary skip with `SKIP_REASON`
where it is missing (CI installs it and fails on that skip).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import free_port, wait_until

PROMETHEUS = shutil.which("prometheus")
SKIP_REASON = (
    "the prometheus binary is not installed (Debian: apt-get install -y prometheus); "
    "the tests against a real Prometheus did not run"
)
READY_DEADLINE_S = 60.0


def require_prometheus() -> str:
    """The binary's path, or skip the calling test with `SKIP_REASON`."""
    if PROMETHEUS is None:
        pytest.skip(SKIP_REASON)
    return PROMETHEUS


@dataclass
class PrometheusServer:
    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.directory / "prometheus.log").read_text(errors="replace")

    def query(self, promql: str) -> dict[str, Any]:
        """The ``data`` of an instant query, read with the standard library: the test's
        own view, independent of the client under test."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def is_ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"prometheus exited ({self.process.returncode}) before it was ready:\n{self.log()}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_scraping(self, targets: int, deadline_s: float = READY_DEADLINE_S) -> None:
        """Until `targets` targets were scraped and are up."""
        wait_until(
            lambda: (
                [series["value"][1] for series in self.query("up")["result"]] == ["1"] * targets
            ),
            deadline_s,
            what=f"prometheus to scrape {targets} target(s) successfully",
            interval_s=0.2,
            ignore=(OSError,),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_prometheus(
    directory: Path,
    targets: Sequence[str],
    *,
    deadline_s: float = READY_DEADLINE_S,
    labels: Mapping[str, str] | None = None,
) -> PrometheusServer:
    """Start Prometheus with its configuration, data and log under `directory`, scraping
    `targets` (``host:port``) every second, and return it once it is ready. `labels` are
    added to every scraped series, as a Kubernetes scrape configuration adds `namespace`.
    Skips the test where the binary is missing. The caller stops it (`stop`)."""
    binary = require_prometheus()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "driftline-serve",
                        "static_configs": [
                            {"targets": list(targets), "labels": dict(labels or {})}
                        ],
                    }
                ],
            }
        )
    )
    port = free_port()
    with (directory / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, port, directory)
    try:
        wait_until(server.is_ready, deadline_s, what="prometheus /-/ready", interval_s=0.1)
    except BaseException:
        server.stop()
        raise
    return server
