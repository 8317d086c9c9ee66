"""Importing this module registers every Driftline handler with kopf's default registry."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from driftline.handlers import driftpolicy, indexes, modeldeployment, modelversion, watch_resilience
from driftline.handlers.kube import Kube, load_client_configuration
from driftline.handlers.runtime import Runtime, configure
from driftline.render.settings import RenderSettings

__all__ = ["driftpolicy", "indexes", "modeldeployment", "modelversion"]

FINALIZER = "driftline.io/finalizer"


@kopf.on.startup()
def configure_operator(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure(Runtime(Kube(load_client_configuration()), RenderSettings.from_environment()))
    # No single API answer on a list or watch may stop the operator (kopf exits on a 409).
    watch_resilience.install()
    # Our own Events announce every transition; kopf's per-handler chatter would cost one
    # API call per handling.
    settings.posting.level = logging.ERROR
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="kopf.driftline.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.driftline.io", key="last-handled-configuration"
    )
    # After its own patch kopf waits for the watch to show it before handling the object
    # again; under load the watch lags more than the 5 s default, and kopf then handles a
    # stale copy (a creation twice). Waiting longer costs nothing when the watch is quick.
    settings.persistence.consistency_timeout = 60
    settings.execution.max_workers = 16
    settings.peering.standalone = True
    # Handlers wait on I/O only; give many objects room to be handled at once.
    settings.batching.worker_limit = 1000
    settings.networking.request_timeout = 60
