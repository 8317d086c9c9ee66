"""``driftline-serve``: the serving command (also the container's entry point)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from driftline_serving.server.config import ConfigError, parse_config
from driftline_serving.server.observers import InferenceObserver


def _event_loop_factory() -> type[asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without
        return None
    return uvloop.Loop


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as error:
        print(f"driftline-serve: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from driftline_serving.server.serve import serve_until_signalled

    observers: list[InferenceObserver] = []
    sampler = None
    if config.drift_sample_socket:
        from driftline_serving.sampling.sampler import Sampler

        sampler = Sampler(
            config.drift_sample_socket,
            config.drift_sampling_rate,
            config.drift_queue_rows,
            flush_interval_s=config.drift_flush_ms / 1000.0,
            model_version=config.model_version,
        ).start()
        observers.append(sampler)
    loop_factory = _event_loop_factory()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve_until_signalled(config, observers))
    finally:
        if sampler is not None:
            sampler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
