"""The evaluator service in-process: samples over a real socket, verdicts into a
DriftPolicy in the local Kubernetes API over HTTP, with replicas and API faults."""

from __future__ import annotations

import asyncio
import functools
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import pytest
from kubernetes.client.exceptions import ApiException

from driftline_serving.drift import load_profile
from driftline_serving.evaluator.app import EvaluatorService, EvaluatorSettings
from driftline_serving.evaluator.kube import KubernetesPolicyApi
from driftline_serving.sampling.sampler import Sampler
from driftline_serving.server.observers import InferenceRecord
from tests.support import free_port, wait_until_async

from .conftest import (
    FEATURES,
    NAMESPACE,
    POLICY,
    drifted_condition,
    read_policy,
    reference_rows,
    scores_for,
)

SHIFTED = ("f1", "f5")


def traffic(rows: int, *, drift: bool, seed: int) -> np.ndarray:
    matrix = reference_rows(rows, seed=seed)
    if drift:
        for name in SHIFTED:
            matrix[:, FEATURES.index(name)] += 1.0
    return matrix


def send(sampler: Sampler, matrix: np.ndarray, prefix: str) -> None:
    for i, row in enumerate(matrix):
        sampler.observe(
            InferenceRecord(
                request_id=f"{prefix}-{i}",
                model_name="churn",
                model_version="churn-v2",
                inputs={"features": row[None, :]},
                outputs={"probabilities": scores_for(row[None, :])},
                received_at_unix_s=time.time(),
                duration_s=0.0,
            )
        )


# the test's own reads may hit injected faults too, so those are retried
poll = functools.partial(wait_until_async, interval_s=0.1, ignore=(ApiException,), in_thread=True)


def make_service(api, profile_file, tmp_path: Path, pod: str) -> EvaluatorService:
    settings = EvaluatorSettings(
        pod=pod,
        model_version="churn-v2",
        listen=f"unix://{tmp_path}/{pod}.sock",
        http_host="127.0.0.1",
        http_port=free_port(),
        interval_override_s=0.2,
    )
    policy_api = KubernetesPolicyApi(api.api_client(), NAMESPACE, POLICY, timeout_s=2.0)
    return EvaluatorService(settings, load_profile(profile_file[0]), policy_api)


async def run_replica(service: EvaluatorService, drift_after: int, seed: int) -> Sampler:
    sampler = Sampler(service.settings.listen, rate=1.0, flush_interval_s=0.02).start()
    send(sampler, traffic(drift_after, drift=False, seed=seed), f"{service.settings.pod}-clean")
    return sampler


@pytest.mark.timeout(120)
async def test_no_drift_then_drift_names_the_shifted_features(api, profile_file, tmp_path) -> None:
    service = make_service(api, profile_file, tmp_path, "churn-0")
    await service.start()
    sampler = await run_replica(service, 500, seed=11)
    try:
        await poll(lambda: (drifted_condition(read_policy(api)) or {}).get("reason") == "NoDrift")
        policy = read_policy(api)
        assert policy["status"]["pods"]["churn-0"]["evaluation"]["samples"] == 500

        send(sampler, traffic(500, drift=True, seed=12), "churn-0-drift")
        condition = await poll(
            lambda: (c := drifted_condition(read_policy(api))) and c["status"] == "True" and c
        )
        report = read_policy(api)["status"]["pods"]["churn-0"]
        drifted = {f["name"] for f in report["evaluation"]["features"] if f["drifted"]}
        assert drifted == set(SHIFTED)
        assert report["consecutiveDrifted"] >= 2
        assert all(name in condition["message"] for name in SHIFTED)

        port = service.settings.http_port
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        )
        assert 'driftline_drift_feature_drifted{feature="f1"} 1.0' in body
        assert 'driftline_drift_feature_drifted{feature="f0"} 0.0' in body
        page = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/report").read().decode()
        )
        assert "<svg" in page and "f5" in page
        report_json = orjson.loads(
            await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/report.json").read()
            )
        )
        assert report_json["report"]["drifted"] is True
    finally:
        sampler.close()
        await service.stop()


@pytest.mark.timeout(120)
async def test_two_replicas_report_without_overwriting(api, profile_file, tmp_path) -> None:
    services = [make_service(api, profile_file, tmp_path, f"churn-{i}") for i in range(2)]
    for service in services:
        await service.start()
    samplers = [await run_replica(s, 500, seed=20 + i) for i, s in enumerate(services)]
    try:
        send(samplers[1], traffic(500, drift=True, seed=30), "churn-1-drift")
        await poll(lambda: (c := drifted_condition(read_policy(api))) and c["status"] == "True")
        status = read_policy(api)["status"]
        assert set(status["pods"]) == {"churn-0", "churn-1"}
        assert not status["pods"]["churn-0"]["evaluation"]["drifted"]
        assert status["pods"]["churn-1"]["evaluation"]["drifted"]
        assert "churn-1" in drifted_condition(read_policy(api))["message"]
        assert sum(s.reporter.stats.writes for s in services) >= 4
    finally:
        for sampler in samplers:
            sampler.close()
        for service in services:
            await service.stop()


@pytest.mark.timeout(120)
async def test_verdict_survives_api_failures(api, profile_file, tmp_path) -> None:
    service = make_service(api, profile_file, tmp_path, "churn-0")
    service.reporter._max_backoff_s = 0.5  # keep the test short; the default is 30 s
    await service.start()
    sampler = await run_replica(service, 500, seed=40)
    try:
        await poll(lambda: drifted_condition(read_policy(api)) is not None)
        faults = [
            api.faults.inject(
                kind, resource="driftpolicies", rate=0.7, duration=4.0, hang_seconds=3.0
            )
            for kind in (500, 429, 409, "timeout")
        ]
        send(sampler, traffic(500, drift=True, seed=41), "churn-0-drift")
        await poll(lambda: sum(f.fired for f in faults) >= 5, timeout_s=20)
        evaluations_during_outage = service.evaluator.counters.evaluations
        condition = await poll(
            lambda: (c := drifted_condition(read_policy(api))) and c["status"] == "True" and c,
            timeout_s=60,
        )
        assert set(SHIFTED) <= set(condition["message"].replace(",", " ").replace(";", " ").split())
        assert service.reporter.stats.failures + service.reporter.stats.conflicts >= 1
        assert service.evaluator.counters.evaluations > evaluations_during_outage, (
            "it kept evaluating"
        )
    finally:
        sampler.close()
        await service.stop()
