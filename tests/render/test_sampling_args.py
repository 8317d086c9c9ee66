"""The DriftPolicy's sampling settings reach the server exactly as the server reads them."""

from __future__ import annotations

from typing import Any

from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import ModelDeployment
from driftline.api.modelversion import ModelVersion
from driftline.render.deployment import SERVER_CONTAINER, render_deployment
from driftline.render.settings import RenderSettings
from driftline_serving.server.config import parse_config

SETTINGS = RenderSettings(serving_image="registry.test/driftline-serving:9.9")


def server_environment(
    deployment_body: dict[str, Any], model_version: ModelVersion, policy: DriftPolicy
) -> dict[str, str]:
    rendered = render_deployment(
        deployment_body,
        ModelDeployment.model_validate(deployment_body).spec,
        track="stable",
        model_version=model_version,
        replicas=1,
        policy=policy,
        settings=SETTINGS,
    )
    (server,) = (
        c
        for c in rendered["spec"]["template"]["spec"]["containers"]
        if c["name"] == SERVER_CONTAINER
    )
    return {e["name"]: e["value"] for e in server["env"] if "value" in e}


def with_sampling(policy: DriftPolicy, **sampling: Any) -> DriftPolicy:
    body = policy.model_dump(by_alias=True, exclude_none=True)
    body["spec"]["sampling"] = {**body["spec"].get("sampling", {}), **sampling}
    return DriftPolicy.model_validate(body)


def test_queue_size_and_rate_reach_the_server_config(
    cpu_deployment_body, churn_v2, drift_policy
) -> None:
    policy = with_sampling(drift_policy, rate=0.25, queueSize=2500)
    environ = server_environment(cpu_deployment_body, churn_v2, policy)
    config = parse_config([], environ)
    assert config.drift_queue_rows == 2500
    assert config.drift_sampling_rate == 0.25


def test_default_queue_size_is_the_policy_default(cpu_deployment_body, churn_v2, drift_policy):
    body = drift_policy.model_dump(by_alias=True, exclude_none=True)
    body["spec"].pop("sampling", None)
    policy = DriftPolicy.model_validate(body)
    config = parse_config([], server_environment(cpu_deployment_body, churn_v2, policy))
    assert config.drift_queue_rows == policy.spec.sampling.queue_size == 10_000


def test_the_metrics_labels_name_the_model_version_and_track(cpu_deployment_body, churn_v2):
    """Analysis queries select `version="<ModelVersion name>"` and a track: the rendered
    server is told both, as the server reads them."""
    for track in ("stable", "canary"):
        rendered = render_deployment(
            cpu_deployment_body,
            ModelDeployment.model_validate(cpu_deployment_body).spec,
            track=track,
            model_version=churn_v2,
            replicas=1,
            policy=None,
            settings=SETTINGS,
        )
        (server,) = (
            c
            for c in rendered["spec"]["template"]["spec"]["containers"]
            if c["name"] == SERVER_CONTAINER
        )
        config = parse_config([], {e["name"]: e["value"] for e in server["env"] if "value" in e})
        assert config.metrics_version == churn_v2.metadata["name"] != churn_v2.spec.version
        assert config.track == track
