"""Writes this pod's verdict into the DriftPolicy's status, whatever the API server does.

Evaluation never waits for the API: the evaluator hands its latest report to `submit`,
which replaces any report not yet written (the newest verdict, with its consecutive
count, supersedes older ones). A background task writes it with optimistic concurrency
and retries: 409 at once (re-read and merge), 429, 5xx and timeouts with capped
exponential backoff and jitter, for as long as it takes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

from driftline_vocabulary.conditions import now_rfc3339
from driftline_vocabulary.driftstatus import combined_status, merge_pod_report, report_max_age

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An API answer other than success; `status` is the HTTP code, 0 for no answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class PolicyApi(Protocol):
    """The two calls the evaluator makes; RBAC allows nothing else."""

    def get_policy(self) -> dict[str, Any]: ...

    def patch_policy_status(self, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class ReporterStats:
    writes: int = 0
    conflicts: int = 0
    failures: int = 0
    superseded: int = 0


class StatusReporter:
    def __init__(
        self,
        api: PolicyApi,
        pod: str,
        *,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.api = api
        self.pod = pod
        self.stats = ReporterStats()
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._pending: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self.written: dict[str, Any] | None = None

    def submit(self, report: dict[str, Any]) -> None:
        if self._pending is not None:
            self.stats.superseded += 1
        self._pending = report
        self._changed.set()

    @property
    def has_pending(self) -> bool:
        return self._pending is not None

    async def run(self) -> None:
        backoff = self._initial_backoff_s
        while True:
            await self._changed.wait()
            self._changed.clear()
            while self._pending is not None:
                report = self._pending
                try:
                    await asyncio.to_thread(self._write, report)
                except ApiError as error:
                    if error.status == 409:
                        self.stats.conflicts += 1
                        continue  # someone else wrote first: re-read and merge again
                    self.stats.failures += 1
                    delay = backoff * (0.5 + random.random())
                    log.warning(
                        "writing DriftPolicy status failed (%s); retrying in %.1fs", error, delay
                    )
                    backoff = min(backoff * 2, self._max_backoff_s)
                    try:
                        await asyncio.wait_for(self._changed.wait(), timeout=delay)
                        self._changed.clear()
                    except TimeoutError:
                        pass
                    continue
                backoff = self._initial_backoff_s
                if self._pending is report:
                    self._pending = None
                self.written = report

    def _write(self, report: dict[str, Any]) -> None:
        policy = self.api.get_policy()
        spec = policy.get("spec", {})
        consecutive = int(spec.get("hysteresis", {}).get("consecutiveWindows", 3))
        current = policy.get("status")
        generation = policy.get("metadata", {}).get("generation")
        if "evaluation" in report:
            status = merge_pod_report(
                current,
                self.pod,
                report,
                consecutive_windows=consecutive,
                generation=generation,
                now=now_rfc3339(),
                max_age_seconds=report_max_age(spec),
            )
        else:  # NotEvaluating: no evaluation to make the latest
            pods = {**((current or {}).get("pods") or {}), self.pod: report}
            status = combined_status(
                current,
                pods,
                consecutive_windows=consecutive,
                generation=generation,
                now=now_rfc3339(),
                max_age_seconds=report_max_age(spec),
            )
        # A merge patch keeps keys it does not mention: the previous report's keys that
        # this one lacks (an old evaluation, reason or cooldown) are deleted with null.
        previous = ((current or {}).get("pods") or {}).get(self.pod) or {}
        status["pods"] = {
            **status["pods"],
            self.pod: {**{key: None for key in previous if key not in report}, **report},
        }
        body = {
            "metadata": {"resourceVersion": policy["metadata"]["resourceVersion"]},
            "status": status,
        }
        self.api.patch_policy_status(body)
        self.stats.writes += 1
