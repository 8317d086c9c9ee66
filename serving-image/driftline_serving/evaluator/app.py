"""The evaluator process: receive samples, evaluate on the policy's interval, report.

Three things run on one event loop: the sample receiver, the evaluation loop and the
status reporter; an aiohttp server exposes /metrics, /report.json, /report and /healthz.
The evaluation loop never waits on the API server: the reporter retries on its own.

The sidecar never exits because drift cannot be evaluated (it shares the pod with the
model server, whose readiness must not depend on it): until the reference profile is
loaded, the evaluation loop retries the load with backoff and reports `NotEvaluating`,
with the reason, as this pod's entry in the DriftPolicy's status; samples that arrive
meanwhile are counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from driftline_serving.drift import Profile
from driftline_serving.evaluator.core import Evaluator, evaluation_wire
from driftline_serving.evaluator.metrics import EvaluatorMetrics
from driftline_serving.evaluator.receiver import SampleReceiver
from driftline_serving.evaluator.reference import (
    Backoff,
    NotEvaluatingReason,
    ReferenceNotLoaded,
)
from driftline_serving.evaluator.report_page import render_report
from driftline_serving.evaluator.reporter import ApiError, PolicyApi, StatusReporter
from driftline_serving.sampling.codec import Feedback, Message, SampleBatch
from driftline_vocabulary.conditions import now_rfc3339

log = logging.getLogger(__name__)

EVALUATING = "Evaluating"
NOT_EVALUATING = "NotEvaluating"
MESSAGE_LIMIT = 1024  # a status message, not a log: long fetch errors are cut

ReferenceLoader = Callable[[], Profile]


@dataclass(frozen=True)
class EvaluatorSettings:
    pod: str
    model_version: str
    listen: str
    http_host: str = "0.0.0.0"
    http_port: int = 9090
    interval_override_s: float | None = None
    reference_retry: Backoff = field(default_factory=Backoff)


class EvaluatorService:
    def __init__(
        self,
        settings: EvaluatorSettings,
        reference: Profile | ReferenceLoader,
        api: PolicyApi,
        baseline_metrics: dict[str, float] | None = None,
    ) -> None:
        """`reference` is the loaded profile, or a loader that the evaluation loop calls
        (in a thread, retrying with backoff) until it returns one."""
        self.settings = settings
        self.api = api
        self.baseline_metrics = dict(baseline_metrics or {})
        self.evaluator: Evaluator | None = None
        self.not_evaluating: ReferenceNotLoaded | None = None
        self.spec: dict[str, Any] = {}
        self._load_reference: ReferenceLoader | None = None
        self._reported_cooldown_until: float | None = None
        self.metrics = EvaluatorMetrics()
        if isinstance(reference, Profile):
            self._begin_evaluating(reference)
        else:
            self._load_reference = reference
        self.reporter = StatusReporter(api, settings.pod)
        self.receiver = SampleReceiver(settings.listen, self.deliver)
        self.latest: dict[str, Any] | None = None
        self.latest_report_dict: dict[str, Any] | None = None
        self._bad_frames_seen = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    # --- samples in ------------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        if self.evaluator is None:
            if isinstance(message, SampleBatch):  # nothing to compare with: dropped
                self.metrics.samples_seen.inc(message.rows)
            return
        if isinstance(message, SampleBatch):
            before = self.evaluator.counters.rows_invalid
            self.evaluator.add(message, time.time())
            self.metrics.samples_seen.inc(message.rows)
            self.metrics.samples_invalid.inc(self.evaluator.counters.rows_invalid - before)
        elif isinstance(message, Feedback):
            joined = self.evaluator.counters.feedback_joined
            self.evaluator.add_feedback(message)
            new = self.evaluator.counters.feedback_joined - joined
            self.metrics.feedback.labels("joined").inc(new)
            self.metrics.feedback.labels("unknown").inc(len(message.request_ids) - new)

    # --- evaluation loop -------------------------------------------------------------

    async def refresh_policy(self) -> None:
        try:
            policy = await asyncio.to_thread(self.api.get_policy)
        except ApiError as error:
            log.warning("could not read the DriftPolicy (%s); keeping the last settings", error)
            return
        self.spec = dict(policy.get("spec") or {})
        own = ((policy.get("status") or {}).get("pods") or {}).get(self.settings.pod) or {}
        self._reported_cooldown_until = _epoch(own.get("cooldownUntil"))
        self._configure()

    def _configure(self) -> None:
        if self.evaluator is None:
            return
        try:
            self.evaluator.configure(self.spec)
        except ValueError as error:
            log.error("DriftPolicy settings cannot be evaluated: %s", error)
        if self._reported_cooldown_until is not None:
            # A cooldown in the status that this evaluator does not know of was started
            # by its previous run (a restarted container keeps its pod name).
            self.evaluator.resume_cooldown(self._reported_cooldown_until, time.time())

    def interval_s(self) -> float:
        if self.settings.interval_override_s is not None:
            return self.settings.interval_override_s
        return float((self.spec.get("window") or {}).get("intervalSeconds", 60))

    def evaluate_once(self) -> dict[str, Any]:
        if self.evaluator is None:
            raise RuntimeError("no reference profile is loaded; nothing to evaluate")
        now = time.time()
        started = time.perf_counter()
        report = self.evaluator.evaluate(now)
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        self.metrics.record(report, self.evaluator.consecutive_drifted)
        received = self.receiver.stats.bad_frames
        self.metrics.bad_frames.inc(received - self._bad_frames_seen)
        self._bad_frames_seen = received
        evaluation = evaluation_wire(report, now_rfc3339())
        pod_report: dict[str, Any] = {
            "state": EVALUATING,
            "evaluation": evaluation,
            "consecutiveDrifted": self.evaluator.consecutive_drifted,
            "modelVersion": self.settings.model_version,
        }
        if self.evaluator.summary_settings.enabled:
            pod_report["predictions"] = self.evaluator.prediction_summary(now)
        hysteresis = self.evaluator.hysteresis
        if hysteresis.cooldown_until is not None and hysteresis.cooling_down(now):
            pod_report["cooldownUntil"] = _rfc3339(hysteresis.cooldown_until)
        self.latest = evaluation
        self.latest_report_dict = report.to_dict()
        self.reporter.submit(pod_report)
        return pod_report

    def _begin_evaluating(self, profile: Profile) -> None:
        self.evaluator = Evaluator(profile, self.baseline_metrics)
        self._configure()
        self.not_evaluating = None
        self.metrics.set_not_evaluating(None)

    def _report_not_evaluating(self, problem: ReferenceNotLoaded) -> None:
        previous = self.not_evaluating
        self.not_evaluating = problem
        self.metrics.set_not_evaluating(problem.reason.value)
        if previous is not None and (previous.reason, previous.message) == (
            problem.reason,
            problem.message,
        ):
            return  # already reported: a retry that fails the same way writes nothing
        self.reporter.submit(
            {
                "state": NOT_EVALUATING,
                "reason": problem.reason.value,
                "message": problem.message[:MESSAGE_LIMIT],
                "modelVersion": self.settings.model_version,
            }
        )

    async def _try_loading_reference(self, load: ReferenceLoader) -> ReferenceNotLoaded | None:
        """One attempt: None once evaluating, else the problem (already reported)."""
        try:
            profile = await asyncio.to_thread(load)
        except ReferenceNotLoaded as problem:
            self._report_not_evaluating(problem)
            return problem
        self._begin_evaluating(profile)
        log.info("reference profile loaded; evaluating drift")
        return None

    async def _retry_loading_reference(
        self, load: ReferenceLoader, problem: ReferenceNotLoaded
    ) -> bool:
        """After a failed first attempt, until the profile loads: True once it has, False
        when retrying cannot help."""
        attempt = 1
        while problem.retryable:
            delay = self.settings.reference_retry.delay(attempt)
            log.warning(
                "not evaluating drift (%s): %s; retrying in %.1fs", problem.reason, problem, delay
            )
            await asyncio.sleep(delay)
            attempt += 1
            next_problem = await self._try_loading_reference(load)
            if next_problem is None:
                return True
            problem = next_problem
        log.warning("not evaluating drift (%s): %s", problem.reason, problem)
        return False

    async def _evaluation_loop(self) -> None:
        if self.evaluator is None and self._load_reference is not None:
            problem = self.not_evaluating or ReferenceNotLoaded(
                NotEvaluatingReason.REFERENCE_UNAVAILABLE, "not loaded yet"
            )
            if not await self._retry_loading_reference(self._load_reference, problem):
                return  # the sidecar keeps serving its endpoints, reporting why
        while True:
            await self.refresh_policy()
            try:
                self.evaluate_once()
            except Exception:  # an evaluation bug must not stop the sidecar
                log.exception("evaluation failed; trying again next interval")
            await asyncio.sleep(self.interval_s())

    # --- HTTP ------------------------------------------------------------------------

    def http_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/report.json", self._report_json)
        app.router.add_get("/report", self._report_html)
        return app

    def _state(self) -> dict[str, Any]:
        if self.evaluator is not None:
            return {"state": EVALUATING}
        if self.not_evaluating is None:
            return {"state": NOT_EVALUATING, "reason": "Starting"}
        return {
            "state": NOT_EVALUATING,
            "reason": self.not_evaluating.reason.value,
            "message": self.not_evaluating.message,
        }

    async def _healthz(self, request: web.Request) -> web.Response:
        # Healthy while it runs, evaluating or not: the pod's readiness must never hang
        # on drift watching (the rendered sidecar has no readiness probe either).
        return web.json_response({"status": "ok", **self._state()})

    async def _metrics(self, request: web.Request) -> web.Response:
        stats = self.reporter.stats
        for outcome, count in (
            ("ok", stats.writes),
            ("failed", stats.failures),
            ("conflict", stats.conflicts),
        ):
            self.metrics.status_writes.labels(outcome).set(count)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _report_json(self, request: web.Request) -> web.Response:
        evaluator = self.evaluator
        return web.json_response(
            {
                "pod": self.settings.pod,
                "modelVersion": self.settings.model_version,
                **self._state(),
                "consecutiveDrifted": evaluator.consecutive_drifted if evaluator else 0,
                "counters": vars(evaluator.counters) if evaluator else None,
                "report": self.latest_report_dict,
            }
        )

    async def _report_html(self, request: web.Request) -> web.Response:
        title = f"Drift report: {self.settings.pod}"
        if self.evaluator is None:
            state = self._state()
            notice = f"Not evaluating ({state['reason']}): {state.get('message', '')}"
            return web.Response(
                text=render_report(None, [], title, notice), content_type="text/html"
            )
        page = render_report(self.latest, self.evaluator.drifted_histograms(time.time()), title)
        return web.Response(text=page, content_type="text/html")

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh_policy()
        if self.evaluator is None and self._load_reference is not None:
            # The first attempt before samples are taken, so none is dropped when the
            # profile is there; later attempts run in the evaluation loop.
            await self._try_loading_reference(self._load_reference)
        await self.receiver.start()
        self._runner = web.AppRunner(self.http_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port).start()
        self._tasks = [
            asyncio.create_task(self.reporter.run(), name="status-reporter"),
            asyncio.create_task(self._evaluation_loop(), name="evaluation-loop"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.receiver.close()
        if self._runner is not None:
            await self._runner.cleanup()


def _rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(rfc3339: object) -> float | None:
    if not isinstance(rfc3339, str):
        return None
    try:
        return datetime.fromisoformat(rfc3339).timestamp()
    except ValueError:
        return None
