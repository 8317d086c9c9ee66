"""The serving application: model lifecycle and the Open Inference Protocol handlers.

Independent of the HTTP transport: a handler gets the method, path, the few headers that
matter and the body, and answers through a ``Reply`` callback (possibly later, when its
batch has run). The transport in ``http.py`` only moves bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

import orjson

from driftline_serving.artifacts import ArtifactError, fetch_artifact
from driftline_serving.server.batching import BatchSink, DynamicBatcher, Outputs
from driftline_serving.server.config import ServerConfig, container_cpu_limit
from driftline_serving.server.metrics import METRICS_CONTENT_TYPE, ServerMetrics
from driftline_serving.server.model import (
    LoadedModel,
    ModelLoadError,
    RequestLimits,
    RequestValidator,
    SessionSettings,
    inline_row_limit,
    load_model,
)
from driftline_serving.server.observers import (
    FeedbackReceiver,
    InferenceObserver,
    InferenceRecord,
    MetricsSource,
)
from driftline_serving.server.protocol import (
    HEADER_LENGTH_HEADER,
    InferRequest,
    ProtocolError,
    check_content_type,
    decode_infer_request,
    encode_error,
    encode_infer_response,
    parse_feedback,
    select_outputs,
)
from driftline_serving.server.routing import Endpoint, route

log = logging.getLogger(__name__)

JSON = b"application/json"
OCTET_STREAM = b"application/octet-stream"

SERVER_NAME = "driftline"
# Under light traffic a model call this short may block the event loop: cheaper than
# handing it to the model thread and back.
INLINE_BUDGET_S = 0.001


@dataclass(slots=True)  # not frozen: built per request, and frozen costs per field
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    # Extra headers, already encoded: (name, value).
    headers: tuple[tuple[bytes, bytes], ...] = ()


Reply = Callable[[Response], None]


class ModelState(Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


# Names the pod whose drift sidecar remembers an answer (ServerConfig.pod_name).
POD_HEADER = b"driftline-pod"


def error_response(status: int, message: str) -> Response:
    return Response(status, encode_error(message))


# Paths are echoed in error messages: never more than this of them.
SHOWN_PATH_CHARACTERS = 200


def shown_path(path: str) -> str:
    """A request path as an error message may quote it: without its query, cut short."""
    path = path.split("?", 1)[0]
    if len(path) <= SHOWN_PATH_CHARACTERS:
        return path
    return f"{path[:SHOWN_PATH_CHARACTERS]}... ({len(path)} characters)"


class ServingApp:
    def __init__(self, config: ServerConfig, observers: Sequence[InferenceObserver] = ()) -> None:
        self.config = config
        self.metrics = ServerMetrics(
            config.model_name, config.model_version, config.metrics_version, config.track
        )
        self.all_observers = list(observers)
        # observers that take whole batches (the drift sampler) are handed each answered
        # batch by the batcher; the others are called per request
        self.batch_sinks = tuple(o for o in observers if isinstance(o, BatchSink))
        self.observers = [o for o in observers if not isinstance(o, BatchSink)]
        for observer in self.all_observers:
            if isinstance(observer, MetricsSource):
                observer.register_metrics(self.metrics.registry)
        self.state = ModelState.LOADING
        self.reason = "model is loading"
        self.model: LoadedModel | None = None
        self.validator: RequestValidator | None = None
        self.batcher: DynamicBatcher | None = None
        self.draining = False
        self.inline_max_rows = 0
        self.intra_op_threads = config.intra_op_threads or container_cpu_limit()
        # One worker: onnxruntime parallelises inside a call; two concurrent calls would
        # only fight over the same cores.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._metadata_body = b""
        self._ready_body = orjson.dumps({"name": config.model_name, "ready": True})
        # Where labels for an answer's id must go (see ServerConfig.pod_name).
        feedback_on = any(isinstance(o, FeedbackReceiver) for o in self.all_observers)
        self._answer_headers: tuple[tuple[bytes, bytes], ...] = (
            ((POD_HEADER, config.pod_name.encode()),) if feedback_on and config.pod_name else ()
        )

    # --- lifecycle -------------------------------------------------------------------

    async def load(self) -> None:
        """Fetch, verify, load and warm up the model; on failure stay not ready, with why."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            model = await loop.run_in_executor(self._executor, self._load_blocking)
        except (ArtifactError, ModelLoadError) as error:
            self._fail(str(error))
            return
        except Exception as error:  # anything else is still a clear, logged refusal
            log.exception("unexpected error while loading the model")
            self._fail(f"unexpected error while loading the model: {error}")
            return
        self.model = model
        self.validator = RequestValidator(
            model.signature,
            RequestLimits(self.config.max_request_rows, self.config.max_request_elements),
        )
        self.inline_max_rows = (
            self.config.inline_max_rows
            if self.config.inline_max_rows is not None
            else inline_row_limit(model.warm_up_seconds, INLINE_BUDGET_S)
        )
        self.batcher = DynamicBatcher(
            model.run,
            self._executor,
            max_batch_size=self.config.max_batch_size,
            max_wait_s=self.config.max_batch_wait_ms / 1000.0,
            observer=self.metrics,
            batchable=model.signature.batchable,
            uniform_shapes=all(-1 not in spec.shape[1:] for spec in model.signature.inputs),
            inline_max_rows=self.inline_max_rows,
            sinks=self.batch_sinks,
        )
        self.metrics.queue_depth_source = lambda: self.batcher.queue_depth if self.batcher else 0
        self._metadata_body = orjson.dumps(
            {
                "name": self.config.model_name,
                "versions": [self.config.model_version],
                "platform": "onnxruntime_onnx",
                "inputs": [spec.as_metadata() for spec in model.signature.inputs],
                "outputs": [spec.as_metadata() for spec in model.signature.outputs],
                "parameters": {
                    "execution_provider": model.provider,
                    "max_batch_size": self.config.max_batch_size
                    if model.signature.batchable
                    else 0,
                    "max_batch_wait_ms": self.config.max_batch_wait_ms,
                    "intra_op_threads": self.intra_op_threads,
                    "inline_max_rows": self.inline_max_rows,
                    "max_request_rows": self.config.max_request_rows,
                    "max_request_elements": self.config.max_request_elements,
                },
            }
        )
        self.state = ModelState.READY
        self.reason = ""
        self.metrics.model_loaded(model.provider)
        log.info(
            "model %s version %s ready on %s (%.0f ms)",
            self.config.model_name,
            self.config.model_version,
            model.provider,
            (time.perf_counter() - started) * 1000,
        )

    def _load_blocking(self) -> LoadedModel:
        if self.config.sha256 is None:
            log.warning("no sha256 given: %s is loaded without verification", self.config.model_uri)
        artifact = fetch_artifact(
            self.config.model_uri, self.config.artifact_dir, self.config.sha256
        )
        settings = SessionSettings(intra_op_threads=self.intra_op_threads, gpu=self.config.gpu)
        warm_up = (1, self.config.max_batch_size) if self.config.warm_up else ()
        return load_model(artifact.path, settings, warm_up)

    def _fail(self, reason: str) -> None:
        self.state = ModelState.FAILED
        self.reason = reason
        self.metrics.model_unready()
        log.error("model %s is not ready: %s", self.config.model_name, reason)

    def start_draining(self) -> None:
        self.draining = True
        if self.batcher is not None:
            self.batcher.flush()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY and not self.draining

    # --- request handling ----------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        header_length: bytes | None,
        body: bytes,
        reply: Reply,
        content_type: bytes | None = None,
    ) -> None:
        matched = route(path)
        if matched is None:
            reply(error_response(404, f"no such endpoint: {method} {shown_path(path)}"))
            return
        if method != matched.method and not (method == "HEAD" and matched.method == "GET"):
            reply(
                Response(
                    405,
                    encode_error(
                        f"{method} is not allowed on {shown_path(path)}; use {matched.method}"
                    ),
                    headers=((b"allow", matched.method.encode()),),
                )
            )
            return
        endpoint = matched.endpoint
        if endpoint is Endpoint.INFER:
            self._infer(
                matched.model or "", matched.version, header_length, content_type, body, reply
            )
        elif endpoint is Endpoint.FEEDBACK:
            reply(self._model_problem(matched.model or "", matched.version) or self._feedback(body))
        elif endpoint is Endpoint.LIVE:
            reply(Response(200, b'{"live":true}'))
        elif endpoint is Endpoint.READY:
            reply(self._readiness())
        elif endpoint is Endpoint.METRICS:
            reply(Response(200, self.metrics.exposition(), METRICS_CONTENT_TYPE.encode()))
        elif endpoint is Endpoint.SERVER_METADATA:
            reply(self._server_metadata())
        else:
            problem = self._model_problem(matched.model or "", matched.version)
            if problem is not None:
                reply(problem)
            elif endpoint is Endpoint.MODEL_READY:
                reply(self._readiness())
            else:
                reply(self._model_metadata())

    def _server_metadata(self) -> Response:
        from driftline_serving import server

        return Response(
            200,
            orjson.dumps(
                {
                    "name": SERVER_NAME,
                    "version": server.__version__,
                    "extensions": ["binary_tensor_data"],
                }
            ),
        )

    def _readiness(self) -> Response:
        if self.ready:
            return Response(200, self._ready_body)
        reason = "server is shutting down" if self.draining else self.reason
        return Response(
            503, orjson.dumps({"name": self.config.model_name, "ready": False, "reason": reason})
        )

    def _model_problem(self, model: str, version: str | None) -> Response | None:
        if model != self.config.model_name:
            return error_response(
                404,
                f"model '{model}' is not served here; this server serves '{self.config.model_name}'",
            )
        if version is not None and version != self.config.model_version:
            return error_response(
                404,
                f"model '{model}' has no version '{version}'; "
                f"the served version is '{self.config.model_version}'",
            )
        return None

    def _model_metadata(self) -> Response:
        if self.state is not ModelState.READY:
            return error_response(
                503, f"model '{self.config.model_name}' is not ready: {self.reason}"
            )
        return Response(200, self._metadata_body)

    def _feedback(self, body: bytes) -> Response:
        """Hand labels to the drift sidecar: {"request_ids": [...], "labels": [...]}."""
        receivers = [o for o in self.all_observers if isinstance(o, FeedbackReceiver)]
        if not receivers:
            return error_response(
                409, "feedback is not enabled: this server has no drift sampling configured"
            )
        try:
            parsed = parse_feedback(body)
        except ProtocolError as error:
            return error_response(error.status, error.message)
        for receiver in receivers:
            receiver.feedback(*parsed)
        return Response(200, orjson.dumps({"accepted": len(parsed[0])}))

    def _infer(
        self,
        model: str,
        version: str | None,
        header_length: bytes | None,
        content_type: bytes | None,
        body: bytes,
        reply: Reply,
    ) -> None:
        problem = self._model_problem(model, version)
        if problem is not None:
            self.metrics.request_refused("not_found")
            reply(problem)
            return
        batcher = self.batcher
        loaded = self.model
        validator = self.validator
        if (
            self.state is not ModelState.READY
            or batcher is None
            or loaded is None
            or validator is None
        ):
            self.metrics.request_refused("unavailable")
            reply(error_response(503, f"model '{model}' is not ready: {self.reason}"))
            return
        started = time.perf_counter()
        metrics = self.metrics
        metrics.request_started()
        # From here every path ends in exactly one request_finished: the in-flight gauge
        # and the outcome counters stay true whatever fails.
        try:
            check_content_type(content_type)
            request = decode_infer_request(body, header_length, validator)
        except ProtocolError as error:
            reply(error_response(error.status, error.message))
            metrics.request_finished(
                "too_large" if error.status == 413 else "bad_request",
                time.perf_counter() - started,
            )
            return
        except Exception as error:  # a bug: one 500, counted, and the server goes on
            log.exception("cannot decode an inference request")
            reply(error_response(500, f"internal error while reading the request: {error}"))
            metrics.request_finished("error", time.perf_counter() - started)
            return

        def answer(outputs: Outputs | None, error: BaseException | None) -> None:
            outcome = "error"
            try:
                if outputs is None:
                    reply(error_response(500, f"inference failed: {error}"))
                    return
                selected = select_outputs(request, outputs, loaded.signature.output_names)
                payload, json_length = encode_infer_response(
                    self.config.model_name, self.config.model_version, request.request_id, selected
                )
                if json_length is None:
                    reply(Response(200, payload, headers=self._answer_headers))
                else:
                    reply(
                        Response(
                            200,
                            payload,
                            OCTET_STREAM,
                            (
                                (HEADER_LENGTH_HEADER.encode(), str(json_length).encode()),
                                *self._answer_headers,
                            ),
                        )
                    )
                outcome = "success"
            except ProtocolError as refused:  # an output JSON cannot carry (NaN)
                reply(error_response(refused.status, refused.message))
            except Exception as encode_failure:
                log.exception("cannot encode the response")
                reply(error_response(500, f"cannot encode the response: {encode_failure}"))
            finally:
                elapsed = time.perf_counter() - started
                metrics.request_finished(outcome, elapsed)
            if outcome == "success" and outputs is not None and self.observers:
                self._notify(request, outputs, elapsed)

        try:
            batcher.submit(request.inputs, request.rows, answer, request.request_id)
        except Exception as error:
            log.exception("cannot queue an inference request")
            reply(error_response(500, f"internal error while queueing the request: {error}"))
            metrics.request_finished("error", time.perf_counter() - started)

    def _notify(self, request: InferRequest, outputs: Outputs, elapsed: float) -> None:
        record: InferenceRecord | None = None
        for observer in self.observers:
            try:
                if not observer.wants():
                    continue  # decided before any record is built: sampled-out requests cost nothing
                if record is None:
                    # positional: keyword arguments cost a dict per sampled request
                    record = InferenceRecord(
                        request.request_id,
                        self.config.model_name,
                        self.config.model_version,
                        request.inputs,
                        outputs,
                        time.time() - elapsed,
                        elapsed,
                    )
                observer.observe(record)
            except Exception:
                log.exception("inference observer %r failed", observer)
