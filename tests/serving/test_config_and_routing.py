"""Options from flags and environment, the CPU limit from cgroups, and URL routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline_serving.server.config import ConfigError, ServerConfig, cpu_limit, parse_config
from driftline_serving.server.routing import Endpoint, Route, route

REQUIRED = ["--model-name", "mlp", "--model-uri", "/models/mlp.onnx"]


def test_defaults():
    config = parse_config(REQUIRED, {})
    assert config == ServerConfig(model_name="mlp", model_uri="/models/mlp.onnx")


def test_environment_fills_in_and_flags_win():
    environ = {
        "DRIFTLINE_MODEL_NAME": "from-env",
        "DRIFTLINE_MODEL_URI": "s3://bucket/model.onnx",
        "DRIFTLINE_PORT": "9000",
        "DRIFTLINE_MAX_BATCH_SIZE": "8",
        "DRIFTLINE_GPU": "true",
        "DRIFTLINE_MAX_BATCH_WAIT_MS": "2.5",
        "DRIFTLINE_ARTIFACT_DIR": "/cache",
        "DRIFTLINE_SHA256": "",
        "DRIFTLINE_DRIFT_FLUSH_MS": "250",
        "DRIFTLINE_POD_NAME": "churn-stable-7f9c",
    }
    config = parse_config(["--port", "9100", "--no-gpu"], environ)
    assert config.model_name == "from-env"
    assert config.model_uri == "s3://bucket/model.onnx"
    assert config.port == 9100
    assert config.max_batch_size == 8
    assert config.max_batch_wait_ms == 2.5
    assert config.gpu is False
    assert config.artifact_dir == Path("/cache")
    assert config.sha256 is None
    assert config.drift_flush_ms == 250.0
    assert config.pod_name == "churn-stable-7f9c"


def test_metric_identity_and_request_limits_from_flags_and_environment():
    defaults = parse_config(REQUIRED, {})
    # a single server is its model's stable track; the version label falls back to the
    # served version; one request is bounded well below 100,000 rows
    assert (defaults.metrics_version, defaults.track) == ("1", "stable")
    assert (defaults.max_request_rows, defaults.max_request_elements) == (4096, 4 * 1024 * 1024)
    config = parse_config(
        [*REQUIRED, "--track", "canary", "--max-request-rows", "64"],
        {
            "DRIFTLINE_MODEL_VERSION": "2",
            "DRIFTLINE_MODEL_VERSION_NAME": "churn-v2",
            "DRIFTLINE_TRACK": "stable",
            "DRIFTLINE_MAX_REQUEST_ELEMENTS": "4096",
        },
    )
    assert (config.model_version, config.metrics_version, config.track) == (
        "2",
        "churn-v2",
        "canary",
    )
    assert (config.max_request_rows, config.max_request_elements) == (64, 4096)


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--model-uri", "x"], {}, "--model-name (or DRIFTLINE_MODEL_NAME) is required"),
        ([*REQUIRED, "--max-request-rows", "0"], {}, "max request rows must be at least 1"),
        (
            REQUIRED,
            {"DRIFTLINE_MAX_REQUEST_ELEMENTS": "0"},
            "max request elements must be at least 1",
        ),
        ([*REQUIRED, "--track", " "], {}, "track must not be empty"),
        ([*REQUIRED, "--port", "http"], {}, "--port must be an integer, got 'http'"),
        (REQUIRED, {"DRIFTLINE_GPU": "maybe"}, "DRIFTLINE_GPU must be true or false, got 'maybe'"),
        ([*REQUIRED, "--sha256", "abc"], {}, "sha256 must be 64 hexadecimal characters"),
        ([*REQUIRED, "--max-batch-size", "0"], {}, "max batch size must be at least 1"),
        ([*REQUIRED, "--max-batch-wait-ms", "-1"], {}, "max batch wait must not be negative"),
        ([*REQUIRED, "--intra-op-threads", "0"], {}, "intra-op threads must be at least 1"),
        ([*REQUIRED, "--port", "70000"], {}, "port must be between 0 and 65535"),
        ([*REQUIRED, "--max-body-bytes", "10"], {}, "max body bytes must be at least 1024"),
        ([*REQUIRED, "--log-level", "LOUD"], {}, "log level must be DEBUG, INFO, WARNING or ERROR"),
        (["--model-name", "a/b", "--model-uri", "x"], {}, "model name 'a/b' must be letters"),
        (
            [*REQUIRED, "--drift-flush-ms", "0"],
            {},
            "drift flush interval must be between 1 and 60000 ms, got 0.0",
        ),
    ],
)
def test_invalid_options_are_refused_with_a_reason(argv, environ, message):
    with pytest.raises(ConfigError) as raised:
        parse_config(argv, environ)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("v2", "quota", "period", "host", "expected"),
    [
        ("max 100000", None, None, 8, 8),
        ("200000 100000", None, None, 8, 2),
        ("150000 100000", None, None, 8, 2),  # 1.5 CPUs: round up, threads are whole
        ("50000 100000", None, None, 8, 1),
        ("800000 100000", None, None, 2, 2),  # never above the CPUs we can run on
        (None, "300000", "100000", 16, 3),  # cgroup v1
        (None, "-1", "100000", 4, 4),
        ("garbage", None, None, 4, 4),
        (None, None, None, 0, 1),
    ],
)
def test_cpu_limit_from_cgroups(v2, quota, period, host, expected):
    assert cpu_limit(v2, quota, period, host) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/health/live", Route(Endpoint.LIVE)),
        ("/v2/health/ready", Route(Endpoint.READY)),
        ("/v2", Route(Endpoint.SERVER_METADATA)),
        ("/v2/", Route(Endpoint.SERVER_METADATA)),
        ("/metrics", Route(Endpoint.METRICS)),
        ("/v2/models/mlp", Route(Endpoint.MODEL_METADATA, "mlp")),
        ("/v2/models/mlp/ready", Route(Endpoint.MODEL_READY, "mlp")),
        ("/v2/models/mlp/infer", Route(Endpoint.INFER, "mlp")),
        ("/v2/models/mlp/infer?x=1", Route(Endpoint.INFER, "mlp")),
        ("/v2/models/mlp/versions/3", Route(Endpoint.MODEL_METADATA, "mlp", "3")),
        ("/v2/models/mlp/versions/3/ready", Route(Endpoint.MODEL_READY, "mlp", "3")),
        ("/v2/models/mlp/versions/3/infer", Route(Endpoint.INFER, "mlp", "3")),
        ("/v2/models/mlp/explain", None),
        ("/v2/models//infer", None),
        ("/v2/models/mlp/versions/3/infer/x", None),
        ("/v1/models/mlp:predict", None),
        ("/", None),
    ],
)
def test_routes(path, expected):
    assert route(path) == expected


def test_only_infer_is_a_post():
    assert route("/v2/models/m/infer").method == "POST"
    assert route("/v2/models/m").method == "GET"
