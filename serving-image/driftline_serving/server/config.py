"""Server options from command-line flags and DRIFTLINE_* environment variables.

Precedence: flag, then environment variable, then default. Parsing is pure (argv and an
environment mapping in, a validated ``ServerConfig`` out) so every rule is testable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "DRIFTLINE_"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ServerConfig:
    model_name: str
    model_uri: str
    sha256: str | None = None
    model_version: str = "1"
    # The `version` and `track` labels of every serving metric: the ModelVersion's name
    # (None: the same as model_version) and the rollout track (stable, canary, preview).
    model_version_name: str | None = None
    track: str = "stable"
    host: str = "0.0.0.0"
    port: int = 8080
    max_batch_size: int = 256
    max_batch_wait_ms: float = 0.0
    # A lone request with at most this many rows runs on the event loop, skipping the
    # hand-off to the model thread (cheaper when traffic is light); 0 disables, None
    # decides from the warm-up timings (calls of at most 1 ms may run inline).
    inline_max_rows: int | None = None
    # None: match the container's CPU limit (cgroup), see ``container_cpu_limit``.
    intra_op_threads: int | None = None
    gpu: bool = False
    max_body_bytes: int = 16 * 1024 * 1024
    # One request may not have more rows, nor more values over its inputs (413 beyond):
    # onnxruntime's arena keeps the memory of the largest call it ever made.
    max_request_rows: int = 4096
    max_request_elements: int = 4 * 1024 * 1024
    artifact_dir: Path = Path("/tmp/driftline-artifacts")
    drain_timeout_s: float = 30.0
    warm_up: bool = True
    log_level: str = "INFO"
    # Drift sampling (issue 6): where sampled traffic goes, and how much of it.
    drift_sample_socket: str | None = None
    drift_sampling_rate: float = 0.0
    drift_queue_rows: int = 10_000
    drift_flush_ms: float = 50.0
    # This pod's name: with drift sampling on, every answer names the pod in the
    # Driftline-Pod header, because only this pod's sidecar remembers the answer's id and
    # a label sent through a load-balanced Service would mostly reach another pod.
    pod_name: str | None = None

    @property
    def metrics_version(self) -> str:
        """The `version` label: the ModelVersion's name, else the served version."""
        return self.model_version_name or self.model_version


# (option name, type, help). Each option is also read from DRIFTLINE_<NAME upper-cased>.
_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("model_name", "str", "name the model is served under (/v2/models/NAME)"),
    ("model_uri", "str", "artifact: file://, a path, https:// or s3://"),
    ("sha256", "str", "expected sha256 of the artifact; refused when it differs"),
    ("model_version", "str", "version reported in metadata and responses (/versions/V)"),
    (
        "model_version_name",
        "str",
        "the ModelVersion's name: the `version` label of the metrics (default: --model-version)",
    ),
    (
        "track",
        "str",
        "the rollout track (stable, canary, preview): the `track` label of the metrics",
    ),
    ("host", "str", "address to listen on"),
    ("port", "int", "port to listen on"),
    ("max_batch_size", "int", "most rows in one onnxruntime call (1 disables batching)"),
    ("max_batch_wait_ms", "float", "how long a partial batch may wait for more rows"),
    (
        "inline_max_rows",
        "int",
        "a lone request up to this many rows skips the model thread (default: from warm-up)",
    ),
    ("intra_op_threads", "int", "onnxruntime intra-op threads (default: the CPU limit)"),
    ("gpu", "bool", "run on CUDA; without a usable GPU the server stays not ready"),
    ("max_body_bytes", "int", "largest request body accepted (413 above)"),
    ("max_request_rows", "int", "most rows in one request (413 above)"),
    ("max_request_elements", "int", "most values over all inputs of one request (413 above)"),
    ("artifact_dir", "path", "where downloaded artifacts are kept"),
    ("drain_timeout_s", "float", "on SIGTERM, how long in-flight requests may take"),
    ("warm_up", "bool", "run the model once before reporting ready"),
    ("log_level", "str", "DEBUG, INFO, WARNING or ERROR"),
    (
        "drift_sample_socket",
        "str",
        "send sampled traffic to the drift sidecar here: unix:///path or tcp://host:port",
    ),
    ("drift_sampling_rate", "float", "fraction of requests sampled for drift detection (0..1)"),
    ("drift_queue_rows", "int", "sampled rows buffered for the sidecar before dropping"),
    (
        "drift_flush_ms",
        "float",
        "how often sampled rows are shipped to the sidecar (longer: fewer, larger frames)",
    ),
    (
        "pod_name",
        "str",
        "this pod's name, sent in the Driftline-Pod header of answers when feedback is on",
    ),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, kind: str, raw: str) -> object:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "path":
            return Path(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got {raw!r}"
        ) from None
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline-serve",
        description="Serve an ONNX model over the Open Inference Protocol v2. Every option "
        f"can also be set as an environment variable {ENV_PREFIX}<OPTION>, e.g. "
        f"{ENV_PREFIX}MAX_BATCH_SIZE=32.",
    )
    for name, kind, help_text in _OPTIONS:
        flag = "--" + name.replace("_", "-")
        if kind == "bool":
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)
    return parser


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    """Flags over environment over defaults, validated."""
    namespace = build_parser().parse_args(list(argv))
    values: dict[str, object] = {}
    for name, kind, _ in _OPTIONS:
        flag_value = getattr(namespace, name)
        env_name = ENV_PREFIX + name.upper()
        if flag_value is not None:
            values[name] = (
                flag_value
                if isinstance(flag_value, bool)
                else _convert("--" + name.replace("_", "-"), kind, flag_value)
            )
        elif environ.get(env_name, "") != "":
            values[name] = _convert(env_name, kind, environ[env_name])
    for required in ("model_name", "model_uri"):
        if not values.get(required):
            raise ConfigError(
                f"--{required.replace('_', '-')} (or {ENV_PREFIX}{required.upper()}) is required"
            )
    config = ServerConfig(**values)  # type: ignore[arg-type]
    return validate_config(config)


def validate_config(config: ServerConfig) -> ServerConfig:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config.model_name):
        raise ConfigError(
            f"model name {config.model_name!r} must be letters, digits, '.', '_' or '-' "
            "(it is part of the URL path)"
        )
    if config.sha256 is not None and not _SHA256.match(config.sha256.lower()):
        raise ConfigError(f"sha256 must be 64 hexadecimal characters, got {config.sha256!r}")
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"port must be between 0 and 65535, got {config.port}")
    if config.max_batch_size < 1:
        raise ConfigError(f"max batch size must be at least 1, got {config.max_batch_size}")
    if config.max_batch_wait_ms < 0:
        raise ConfigError(f"max batch wait must not be negative, got {config.max_batch_wait_ms}")
    if config.inline_max_rows is not None and config.inline_max_rows < 0:
        raise ConfigError(f"inline max rows must not be negative, got {config.inline_max_rows}")
    if config.intra_op_threads is not None and config.intra_op_threads < 1:
        raise ConfigError(f"intra-op threads must be at least 1, got {config.intra_op_threads}")
    if not 0.0 <= config.drift_sampling_rate <= 1.0:
        raise ConfigError(
            f"drift sampling rate must be between 0 and 1, got {config.drift_sampling_rate}"
        )
    if not 1.0 <= config.drift_flush_ms <= 60_000.0:
        raise ConfigError(
            f"drift flush interval must be between 1 and 60000 ms, got {config.drift_flush_ms}"
        )
    if config.drift_queue_rows < 1:
        raise ConfigError(f"drift queue rows must be at least 1, got {config.drift_queue_rows}")
    if config.drift_sample_socket is not None and not config.drift_sample_socket.startswith(
        ("unix://", "tcp://")
    ):
        raise ConfigError(
            f"drift sample socket must be unix:///path or tcp://host:port, got {config.drift_sample_socket!r}"
        )
    if config.max_request_rows < 1:
        raise ConfigError(f"max request rows must be at least 1, got {config.max_request_rows}")
    if config.max_request_elements < 1:
        raise ConfigError(
            f"max request elements must be at least 1, got {config.max_request_elements}"
        )
    if not config.track.strip():
        raise ConfigError("track must not be empty (it is the `track` label of the metrics)")
    if config.max_body_bytes < 1024:
        raise ConfigError(f"max body bytes must be at least 1024, got {config.max_body_bytes}")
    if config.drain_timeout_s < 0:
        raise ConfigError(f"drain timeout must not be negative, got {config.drain_timeout_s}")
    if config.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(
            f"log level must be DEBUG, INFO, WARNING or ERROR, got {config.log_level!r}"
        )
    return config


def cpu_limit(
    cgroup_v2_cpu_max: str | None,
    cfs_quota_us: str | None,
    cfs_period_us: str | None,
    host_cpus: int,
) -> int:
    """CPUs the container may use: the cgroup quota rounded up, never above the host's.

    cgroup v2 writes ``"<quota> <period>"`` or ``"max <period>"`` to cpu.max; v1 has
    cpu.cfs_quota_us (-1 for none) and cpu.cfs_period_us."""
    quota: float | None = None
    if cgroup_v2_cpu_max:
        parts = cgroup_v2_cpu_max.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota = int(parts[0]) / int(parts[1])
            except (ValueError, ZeroDivisionError):
                quota = None
    elif cfs_quota_us and cfs_period_us:
        try:
            quota_us, period_us = int(cfs_quota_us), int(cfs_period_us)
            if quota_us > 0 and period_us > 0:
                quota = quota_us / period_us
        except ValueError:
            quota = None
    host = max(host_cpus, 1)
    if quota is None or quota <= 0:
        return host
    return max(1, min(host, math.ceil(quota)))


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def container_cpu_limit() -> int:
    """The CPU limit read from cgroups (v2, then v1), capped by the CPUs we may run on."""
    try:
        host_cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        host_cpus = os.cpu_count() or 1
    return cpu_limit(
        _read("/sys/fs/cgroup/cpu.max"),
        _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
        host_cpus,
    )
