"""Drift watching never takes serving down: the real evaluator process, with a reference
profile that is missing, unreachable or wrong, keeps running, reports `NotEvaluating`
with the reason into its DriftPolicy in the local Kubernetes API, and starts evaluating
once the profile can be loaded."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.api.driftpolicy import DriftPolicy, PodReport
from driftline.api.modeldeployment import ModelDeployment
from driftline.api.modelversion import ModelVersion
from driftline.render.deployment import EVALUATOR_CONTAINER, render_deployment
from driftline.render.settings import RenderSettings
from driftline_serving.evaluator.reference import (
    NotEvaluatingReason,
    ReferenceNotLoaded,
    load_reference,
)
from tests.render.conftest import EXAMPLES, load_all, with_uid
from tests.support import free_port, wait_until

from .conftest import NAMESPACE, POLICY, read_policy

pytestmark = pytest.mark.timeout(120)


class Evaluator:
    """One `driftline-evaluator` process, as the operator runs it, outside a pod."""

    def __init__(
        self, api: Any, directory: Path, profile_args: list[str], preamble: str = ""
    ) -> None:
        self.pod = "churn-0"
        self.port = free_port()
        self.log = directory / "evaluator.log"
        options = [
            *("--policy", POLICY, "--namespace", NAMESPACE, "--pod", self.pod),
            *("--model-version", "churn-v2", "--kubeconfig", str(api.kubeconfig_path)),
            *("--listen", f"unix://{directory}/samples.sock", "--host", "127.0.0.1"),
            *("--port", str(self.port), "--interval", "0.3", "--cache-dir", str(directory)),
            *("--reference-retry-seconds", "0.05", "--reference-retry-max-seconds", "0.2"),
            *profile_args,
        ]
        code = f"{preamble}from driftline_serving.evaluator.cli import main; sys.exit(main())"
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"import sys; {code}", *options],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def running(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def start_evaluator(api, tmp_path: Path) -> Iterator[Callable[..., Evaluator]]:
    started: list[Evaluator] = []

    def start(profile_args: list[str], preamble: str = "") -> Evaluator:
        evaluator = Evaluator(api, tmp_path, profile_args, preamble)
        started.append(evaluator)
        return evaluator

    yield start
    for evaluator in started:
        evaluator.stop()


def pod_report(api: Any, evaluator: Evaluator) -> dict[str, Any]:
    assert evaluator.running(), evaluator.log.read_text()
    return ((read_policy(api).get("status") or {}).get("pods") or {}).get(evaluator.pod) or {}


def report_with(api: Any, evaluator: Evaluator, **expected: str) -> Callable[[], Any]:
    def check() -> Any:
        report = pod_report(api, evaluator)
        return all(report.get(k) == v for k, v in expected.items()) and report

    return check


def test_without_a_reference_profile_it_keeps_running_and_says_why(api, start_evaluator):
    evaluator = start_evaluator([])
    report = wait_until(
        report_with(api, evaluator, state="NotEvaluating", reason="NoReferenceProfile")
    )
    assert "spec.reference" in report["message"]
    assert report["modelVersion"] == "churn-v2"
    assert "evaluation" not in report
    status, body = evaluator.get("/healthz")
    assert status == 200
    assert json.loads(body) | {"message": ""} == {
        "status": "ok",
        "state": "NotEvaluating",
        "reason": "NoReferenceProfile",
        "message": "",
    }
    _, metrics = evaluator.get("/metrics")
    assert 'driftline_drift_not_evaluating{reason="NoReferenceProfile"} 1.0' in metrics
    _, page = evaluator.get("/report")
    assert "NoReferenceProfile" in page
    assert evaluator.running()


def test_s3_profile_without_s3_support_is_reported_unavailable(api, start_evaluator):
    # The default image without the s3 extra: importing obstore fails in the process.
    evaluator = start_evaluator(
        ["--profile-uri", "s3://models/churn/reference.dlprofile"],
        preamble="sys.modules['obstore'] = None; ",
    )
    report = wait_until(
        report_with(api, evaluator, state="NotEvaluating", reason="ReferenceUnavailable")
    )
    assert "driftline[s3]" in report["message"]
    assert evaluator.running()


class ProfileServer(http.server.BaseHTTPRequestHandler):
    """Serves the reference profile the way the test says: missing, wrong, then right."""

    mode = "unavailable"
    content = b""

    def do_GET(self) -> None:
        if self.mode == "unavailable":
            self.send_error(503, "Service Unavailable")
            return
        body = self.content if self.mode == "right" else b"not the profile"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def profile_url(profile_file) -> Iterator[str]:
    ProfileServer.content = profile_file[0].read_bytes()
    ProfileServer.mode = "unavailable"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProfileServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/reference.dlprofile"
    server.shutdown()
    server.server_close()


def test_it_retries_until_the_profile_loads_then_evaluates(
    api, start_evaluator, profile_url, profile_file
):
    evaluator = start_evaluator(["--profile-uri", profile_url, "--profile-sha256", profile_file[1]])
    report = wait_until(
        report_with(api, evaluator, state="NotEvaluating", reason="ReferenceUnavailable")
    )
    assert "HTTP 503" in report["message"]
    ProfileServer.mode = "wrong"
    report = wait_until(
        report_with(api, evaluator, state="NotEvaluating", reason="ReferenceInvalid")
    )
    assert "sha256 mismatch" in report["message"]
    ProfileServer.mode = "right"
    report = wait_until(
        lambda: (r := pod_report(api, evaluator)).get("state") == "Evaluating" and r
    )
    assert report["evaluation"]["samples"] == 0
    # nothing of the NotEvaluating report is left behind in the merged status
    assert "reason" not in report and "message" not in report
    assert json.loads(evaluator.get("/healthz")[1])["state"] == "Evaluating"
    _, metrics = evaluator.get("/metrics")
    assert 'driftline_drift_not_evaluating{reason="ReferenceInvalid"} 0.0' in metrics


def test_rendered_sidecar_has_no_probe_that_could_hold_the_pod_back():
    # A pod is ready when every container with a readiness probe passes it (and a
    # container without one is ready once running): the sidecar must not have one.
    deployment = with_uid(load_all(EXAMPLES / "cpu-canary" / "modeldeployment.yaml")[0])
    version = with_uid(load_all(EXAMPLES / "cpu-canary" / "modelversions.yaml")[1])
    policy = with_uid(load_all(EXAMPLES / "drift-retrain" / "driftpolicy.yaml")[0])
    rendered = render_deployment(
        deployment,
        ModelDeployment.model_validate(deployment).spec,
        track="stable",
        model_version=ModelVersion.model_validate(version),
        replicas=1,
        policy=DriftPolicy.model_validate(policy),
        settings=RenderSettings(serving_image="registry.test/driftline-serving:9.9"),
    )
    (sidecar,) = (
        c
        for c in rendered["spec"]["template"]["spec"]["containers"]
        if c["name"] == EVALUATOR_CONTAINER
    )
    assert not {"readinessProbe", "startupProbe"} & set(sidecar)


@pytest.mark.parametrize(
    ("uri", "sha256", "reason", "message"),
    [
        (None, None, NotEvaluatingReason.NO_REFERENCE_PROFILE, "no reference profile"),
        ("gs://bucket/ref", None, NotEvaluatingReason.REFERENCE_INVALID, "unsupported"),
        ("PROFILE", "f" * 64, NotEvaluatingReason.REFERENCE_INVALID, "sha256 mismatch"),
        ("CSV", None, NotEvaluatingReason.REFERENCE_INVALID, "not a usable profile"),
        ("MISSING", None, NotEvaluatingReason.REFERENCE_UNAVAILABLE, "No such file"),
    ],
)
def test_load_failures_are_classified(profile_file, tmp_path, uri, sha256, reason, message):
    csv = tmp_path / "reference.csv"
    csv.write_text("f0,f1\n1,2\n")
    uri = {
        "PROFILE": str(profile_file[0]),
        "CSV": str(csv),
        "MISSING": str(tmp_path / "absent.dlprofile"),
    }.get(uri or "", uri)
    with pytest.raises(ReferenceNotLoaded, match=message) as raised:
        load_reference(uri, sha256, tmp_path)
    assert raised.value.reason is reason
    assert raised.value.retryable is (reason is not NotEvaluatingReason.NO_REFERENCE_PROFILE)


def test_a_valid_profile_loads(profile_file, tmp_path):
    profile = load_reference(str(profile_file[0]), profile_file[1], tmp_path)
    assert len(profile.schema.names) == 8


def test_policy_api_model_accepts_what_the_sidecar_writes():
    # The CRD is generated from this model: a report it does not declare would be pruned.
    report = PodReport.model_validate(
        {
            "state": "NotEvaluating",
            "reason": "ReferenceUnavailable",
            "message": "cannot download",
            "modelVersion": "churn-v2",
        }
    )
    assert report.evaluation is None
