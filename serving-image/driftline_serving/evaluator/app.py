"""The evaluator process: receive samples, evaluate on the policy's interval, report.

Three things run on one event loop: the sample receiver, the evaluation loop and the
status reporter; an aiohttp server exposes /metrics, /report.json, /report and /healthz.
The evaluation loop never waits on the API server: the reporter retries on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from driftline_serving.drift import Profile
from driftline_serving.evaluator.core import Evaluator, evaluation_wire
from driftline_serving.evaluator.metrics import EvaluatorMetrics
from driftline_serving.evaluator.receiver import SampleReceiver
from driftline_serving.evaluator.report_page import render_report
from driftline_serving.evaluator.reporter import ApiError, PolicyApi, StatusReporter
from driftline_serving.sampling.codec import Feedback, Message, SampleBatch
from driftline_vocabulary.conditions import now_rfc3339

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluatorSettings:
    pod: str
    model_version: str
    listen: str
    http_host: str = "0.0.0.0"
    http_port: int = 9091
    interval_override_s: float | None = None


class EvaluatorService:
    def __init__(
        self,
        settings: EvaluatorSettings,
        profile: Profile,
        api: PolicyApi,
        baseline_metrics: dict[str, float] | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.evaluator = Evaluator(profile, baseline_metrics)
        self.metrics = EvaluatorMetrics()
        self.reporter = StatusReporter(api, settings.pod)
        self.receiver = SampleReceiver(settings.listen, self.deliver)
        self.latest: dict[str, Any] | None = None
        self.latest_report_dict: dict[str, Any] | None = None
        self._bad_frames_seen = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    # --- samples in ------------------------------------------------------------------

    def deliver(self, message: Message) -> None:
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
        try:
            self.evaluator.configure(policy.get("spec", {}))
        except ValueError as error:
            log.error("DriftPolicy settings cannot be evaluated: %s", error)

    def interval_s(self) -> float:
        if self.settings.interval_override_s is not None:
            return self.settings.interval_override_s
        return float((self.evaluator.spec.get("window") or {}).get("intervalSeconds", 60))

    def evaluate_once(self) -> dict[str, Any]:
        started = time.perf_counter()
        report = self.evaluator.evaluate(time.time())
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
        self.metrics.record(report, self.evaluator.consecutive_drifted)
        received = self.receiver.stats.bad_frames
        self.metrics.bad_frames.inc(received - self._bad_frames_seen)
        self._bad_frames_seen = received
        evaluation = evaluation_wire(report, now_rfc3339())
        pod_report = {
            "evaluation": evaluation,
            "consecutiveDrifted": self.evaluator.consecutive_drifted,
            "modelVersion": self.settings.model_version,
        }
        self.latest = evaluation
        self.latest_report_dict = report.to_dict()
        self.reporter.submit(pod_report)
        return pod_report

    async def _evaluation_loop(self) -> None:
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

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

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
        return web.json_response(
            {
                "pod": self.settings.pod,
                "modelVersion": self.settings.model_version,
                "consecutiveDrifted": self.evaluator.consecutive_drifted,
                "counters": vars(self.evaluator.counters),
                "report": self.latest_report_dict,
            }
        )

    async def _report_html(self, request: web.Request) -> web.Response:
        page = render_report(
            self.latest,
            self.evaluator.drifted_histograms(time.time()),
            f"Drift report: {self.settings.pod}",
        )
        return web.Response(text=page, content_type="text/html")

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh_policy()
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
