"""The analysis gates' measurements: the shell around driftline.analysis.

For each gate that `driftline.analysis.runs` says is due, one measurement: a Prometheus
query, the built-in gates (from Prometheus, or from two reads of the serving pods' own
/metrics where no Prometheus is configured), the drift gate and the divergence gate (from
the DriftPolicy's per-pod reports, which the index already holds). Every expected failure
is an outcome (QueryError, NoData), never an exception: the gate counts it.

The built-in gates' reads of the pods' /metrics keep the previous read in memory (per run)
to take counter deltas; after an operator restart the first due measurement finds none,
counts one error and reads the baseline, and the next measures from there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftline.analysis import builtin, builtin_promql, divergence, pod_reports
from driftline.analysis.providers.pod_metrics import PodEndpoint, read_track_metrics
from driftline.analysis.providers.prometheus import (
    PrometheusClient,
    PrometheusConfigError,
    PrometheusError,
    auth_from_secret_data,
)
from driftline.analysis.reduction import reduce_result
from driftline.analysis.runs import Due, Target
from driftline.analysis.templating import TemplateError, render_query
from driftline.analysis.types import NoData, Outcome, QueryError, Value
from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.driftstatus import report_max_age
from driftline.handlers.kube import KubeApi, KubeError
from driftline.render import labels as lbl

logger = logging.getLogger(__name__)

STABLE_TRACK = "stable"
Key = tuple[str, str]  # (run, gate)


@dataclass(frozen=True)
class Subject:
    """The deployment a measurement is for."""

    namespace: str
    name: str
    spec: ModelDeploymentSpec
    stable_version: str | None
    policy: DriftPolicy | None


@dataclass
class _Baseline:
    snapshots: dict[str, dict[str, builtin.Snapshot]] = field(default_factory=dict)  # track -> pod


class Analyst:
    """Takes measurements; one per operator, shared by the reconcile threads."""

    def __init__(self, kube: KubeApi, default_prometheus_url: str | None) -> None:
        self.kube = kube
        self.default_prometheus_url = default_prometheus_url or None
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None, str | None], PrometheusClient] = {}
        # (namespace, deployment, run, version) -> the last read of each track's pods
        self._baselines: dict[tuple[str, str, str, str], _Baseline] = {}

    # --- what the reconcile calls ------------------------------------------------------

    def measure(self, subject: Subject, due: Sequence[Due], now: datetime) -> dict[Key, Outcome]:
        outcomes: dict[Key, Outcome] = {}
        builtin_due: dict[Target, list[str]] = {}
        for item in due:
            key = (item.target.run, item.gate.settings.name)
            kind = item.gate.kind
            if kind == "Builtin":
                builtin_due.setdefault(item.target, []).append(item.gate.settings.name)
            elif kind == "Prometheus":
                outcomes[key] = self._prometheus_gate(subject, item)
            elif kind in ("Drift", "Divergence"):
                waiting = _awaiting_first_report(subject, item, now)
                if waiting is not None:
                    outcomes[key] = waiting
                elif kind == "Drift":
                    outcomes[key] = self._drift_gate(subject, item.target, now)
                else:
                    outcomes[key] = self._divergence_gate(subject, item.target, now)
        for target, names in builtin_due.items():
            measured = self._builtin_gates(subject, target)
            for name in names:
                outcomes[(target.run, name)] = measured.get(name) or QueryError(
                    f"built-in gate {name} was not measured"
                )
        return outcomes

    def prepare(self, subject: Subject, running: Iterable[Target]) -> None:
        """Read the baseline of every running run with built-in gates read from the pods
        that has none yet (a run that just began), and forget the runs that ended."""
        running = list(running)
        wanted = {(subject.namespace, subject.name, t.run, t.version) for t in running}
        with self._lock:
            for key in [k for k in self._baselines if k[:2] == (subject.namespace, subject.name)]:
                if key not in wanted:
                    del self._baselines[key]
        if subject.spec.strategy.analysis.builtin is None or self._prometheus_url(subject):
            return
        for target in running:
            key = (subject.namespace, subject.name, target.run, target.version)
            with self._lock:
                known = key in self._baselines
            if not known:
                self._read_windows(subject, target)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            for key in [k for k in self._baselines if k[:2] == (namespace, name)]:
                del self._baselines[key]

    # --- Prometheus ----------------------------------------------------------------------

    def _prometheus_url(self, subject: Subject) -> str | None:
        return subject.spec.strategy.analysis.prometheus_url or self.default_prometheus_url

    def _client(self, subject: Subject) -> PrometheusClient | QueryError:
        url = self._prometheus_url(subject)
        if url is None:
            return QueryError(
                "no Prometheus is configured: set spec.strategy.analysis.prometheusUrl or "
                "the operator's DRIFTLINE_PROMETHEUS_URL"
            )
        token = ca_data = None
        reference = subject.spec.strategy.analysis.prometheus_secret_ref
        if reference is not None:
            where = f"Secret {subject.namespace}/{reference.name}"
            try:
                secret = self.kube.get("v1", "Secret", subject.namespace, reference.name)
            except KubeError as error:
                return QueryError(f"{where} cannot be read: {error}")
            if secret is None:
                return QueryError(
                    f"{where} (spec.strategy.analysis.prometheusSecretRef) is missing"
                )
            try:
                auth = auth_from_secret_data(secret.get("data") or {}, secret=where)
            except PrometheusConfigError as error:
                return QueryError(str(error))
            token, ca_data = auth.bearer_token, auth.ca_data
        key = (url, token, ca_data)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    client = PrometheusClient(url, bearer_token=token, ca_data=ca_data)
                except PrometheusConfigError as error:
                    return QueryError(str(error))
                self._clients[key] = client
        return client

    def _query(self, client: PrometheusClient, promql: str) -> Any:
        try:
            return client.instant_query(promql)
        except PrometheusError as error:
            return QueryError(str(error))

    def _prometheus_gate(self, subject: Subject, item: Due) -> Outcome:
        client = self._client(subject)
        if isinstance(client, QueryError):
            return client
        assert item.gate.query is not None
        try:
            promql = render_query(
                item.gate.query,
                {
                    "version": item.target.version,
                    "track": item.target.track,
                    "namespace": subject.namespace,
                    "deployment": subject.name,
                },
            )
        except TemplateError as error:
            return QueryError(str(error))
        data = self._query(client, promql)
        if isinstance(data, QueryError):
            return data
        return reduce_result(data, promql)

    # --- built-in gates ------------------------------------------------------------------

    def _builtin_gates(self, subject: Subject, target: Target) -> Mapping[str, Outcome]:
        analysis = subject.spec.strategy.analysis
        assert analysis.builtin is not None
        windows = self._read_windows(subject, target)
        if isinstance(windows, QueryError | NoData):
            return _all_builtin(windows)
        canary, stable = windows
        return builtin.measure_builtin(
            canary, stable if target.compare_with_stable else None, analysis.builtin.min_requests
        )

    def _read_windows(
        self, subject: Subject, target: Target
    ) -> tuple[builtin.Window, builtin.Window | None] | QueryError | NoData:
        """The new version's and stable's windows since the last measurement."""
        tracks = [(target.track, target.version)]
        if target.compare_with_stable and subject.stable_version:
            tracks.append((STABLE_TRACK, subject.stable_version))
        if self._prometheus_url(subject):
            return self._prometheus_windows(subject, target, tracks)
        return self._pod_windows(subject, target, tracks)

    def _prometheus_windows(
        self, subject: Subject, target: Target, tracks: list[tuple[str, str]]
    ) -> tuple[builtin.Window, builtin.Window | None] | QueryError:
        client = self._client(subject)
        if isinstance(client, QueryError):
            return client
        seconds = subject.spec.strategy.analysis.interval_seconds
        windows: list[builtin.Window] = []
        for track, version in tracks:
            results = [
                self._query(client, query(subject.namespace, version, track, seconds))
                for query in (builtin_promql.outcomes_query, builtin_promql.buckets_query)
            ]
            for result in results:
                if isinstance(result, QueryError):
                    return result
            window = builtin_promql.window_from_results(*results)
            if isinstance(window, QueryError):
                return window
            windows.append(window)
        return windows[0], windows[1] if len(windows) > 1 else None

    def _pod_windows(
        self, subject: Subject, target: Target, tracks: list[tuple[str, str]]
    ) -> tuple[builtin.Window, builtin.Window | None] | QueryError | NoData:
        key = (subject.namespace, subject.name, target.run, target.version)
        with self._lock:
            before = self._baselines.get(key)
        after = _Baseline()
        windows: list[builtin.Window] = []
        problem: QueryError | NoData | None = None
        for track, version in tracks:
            read = self._read_pods(subject, track, version)
            if isinstance(read, QueryError | NoData):
                problem = problem or read
                continue
            after.snapshots[track] = read
            earlier = before.snapshots.get(track, {}) if before is not None else {}
            windows.append(
                builtin.total(
                    builtin.increase(earlier.get(pod), snapshot) for pod, snapshot in read.items()
                )
            )
        with self._lock:
            self._baselines[key] = after
        if problem is not None:
            return problem
        if before is None:
            return QueryError(
                "no earlier read of the pods' /metrics to measure from (the run just began "
                "or the operator restarted); read now, measured from the next interval"
            )
        return windows[0], windows[1] if len(windows) > 1 else None

    def _read_pods(
        self, subject: Subject, track: str, version: str
    ) -> dict[str, builtin.Snapshot] | QueryError | NoData:
        selector = lbl.selector_string(lbl.track_selector(subject.name, track))
        try:
            pods = self.kube.list("v1", "Pod", subject.namespace, selector)
        except KubeError as error:
            return QueryError(f"the {track} track's pods cannot be listed: {error}")
        port = subject.spec.serving.port
        endpoints = []
        for body in pods:
            status = body.get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            if ready and status.get("podIP") and not body["metadata"].get("deletionTimestamp"):
                endpoints.append(PodEndpoint(body["metadata"]["name"], status["podIP"], port))
        if not endpoints:
            return NoData(f"the {track} track has no ready pods to read metrics from")
        read = read_track_metrics(endpoints)
        if not read.complete:
            failed = "; ".join(f"{pod}: {error}" for pod, error in sorted(read.errors.items()))
            return QueryError(f"the {track} track's /metrics could not all be read: {failed}")
        snapshots: dict[str, builtin.Snapshot] = {}
        for pod, text in read.texts.items():
            snapshot = builtin.read_exposition(text, {"version": version})
            if isinstance(snapshot, QueryError):
                return QueryError(f"pod {pod}: {snapshot.message}")
            snapshots[pod] = snapshot
        return snapshots

    # --- the DriftPolicy's reports -------------------------------------------------------

    def _drift_gate(self, subject: Subject, target: Target, now: datetime) -> Outcome:
        policy = subject.policy
        if policy is None:
            return QueryError("no DriftPolicy targets this deployment")
        pods = _pod_reports(policy)
        return pod_reports.drift_outcome(
            pods,
            target.version,
            now=now,
            max_age_seconds=_report_max_age(policy),
            consecutive_windows=policy.spec.hysteresis.consecutive_windows,
            min_samples=policy.spec.window.min_samples,
        )

    def _divergence_gate(self, subject: Subject, target: Target, now: datetime) -> Outcome:
        settings = subject.spec.strategy.analysis.divergence
        assert settings is not None
        policy = subject.policy
        if policy is None:
            return QueryError(
                "the divergence gate reads the drift sidecars' prediction summaries: "
                "no DriftPolicy targets this deployment"
            )
        if not subject.stable_version:
            return NoData("there is no stable version to compare with")
        pods = _pod_reports(policy)
        age = _report_max_age(policy)
        output = settings.output or first_output(pods, target.version)
        if output is None:
            return NoData(f"no fresh prediction summary of {target.version} yet")
        canary = pod_reports.prediction_counts(
            pods, target.version, output, now=now, max_age_seconds=age
        )
        if not isinstance(canary, Mapping):
            return canary
        stable = pod_reports.prediction_counts(
            pods, subject.stable_version, output, now=now, max_age_seconds=age
        )
        if not isinstance(stable, Mapping):
            return stable if isinstance(stable, QueryError) else NoData(f"stable: {stable.reason}")
        return divergence_outcome(
            canary,
            stable,
            divergence.DivergenceSettings(
                alpha=settings.alpha,
                min_effect=settings.min_effect,
                min_samples=settings.min_samples,
                test=settings.test,
            ),
        )


def divergence_outcome(
    canary: Mapping[str, float],
    stable: Mapping[str, float],
    settings: divergence.DivergenceSettings,
) -> Outcome:
    """The divergence gate's measurement: the effect size when the two-sample test is
    significant, else 0 (no difference that the data can show); too few predictions on
    either track is no data. The gate's bound is the minimum effect."""
    n_canary, n_stable = sum(canary.values()), sum(stable.values())
    if n_canary < settings.min_samples or n_stable < settings.min_samples:
        return NoData(
            f"{n_canary:g} canary and {n_stable:g} stable predictions, fewer than the "
            f"minimum {settings.min_samples} on each track"
        )
    result = divergence.homogeneity_test(canary, stable, settings.test)
    if result.p_value >= settings.alpha:
        return Value(0.0)
    return Value(result.effect(settings.effect))


def _awaiting_first_report(subject: Subject, item: Due, now: datetime) -> QueryError | None:
    """A new version's pods that have not yet reported a full window (the policy's
    minimum samples), while the run is younger than the reports' freshness window: an
    error (counted apart, bounded by the consecutive-error limit, never a pass), not no
    data: a new pod's sidecar needs an evaluation interval and a window's minimum samples
    before its first verdict. After that, a missing or stale report is no data."""
    policy = subject.policy
    if policy is None or item.run_started_at is None:
        return None
    pods = _pod_reports(policy)
    minimum = policy.spec.window.min_samples
    if any(
        report.get("modelVersion") == item.target.version
        and ((report.get("evaluation") or {}).get("samples") or 0) >= minimum
        for report in pods.values()
    ):
        return None
    age = (now - item.run_started_at).total_seconds()
    patience = _report_max_age(policy)
    if age >= patience:
        return None  # no report at all by now: no data
    return QueryError(
        f"the pods of {item.target.version} have not reported a full window (min "
        f"{minimum} samples) to DriftPolicy {policy.metadata.get('name', '')} yet "
        f"({age:.0f}s into the run; awaited for {patience:g}s)"
    )


def first_output(pods: Mapping[str, Mapping[str, Any]], version: str) -> str | None:
    """The first model output the version's pods summarise (the divergence gate's default)."""
    for _, report in sorted(pods.items()):
        if report.get("modelVersion") != version:
            continue
        for summary in report.get("predictions") or []:
            if summary.get("output"):
                return str(summary["output"])
    return None


def _all_builtin(outcome: Outcome) -> dict[str, Outcome]:
    return {
        name: outcome
        for name in (
            builtin.SUCCESS_RATE,
            builtin.SUCCESS_RATE_VS_STABLE,
            builtin.P99_LATENCY,
            builtin.P99_LATENCY_VS_STABLE,
        )
    }


def _pod_reports(policy: DriftPolicy) -> dict[str, dict[str, Any]]:
    status = policy.status.wire() if policy.status is not None else {}
    pods: dict[str, dict[str, Any]] = status.get("pods") or {}
    return pods


def _report_max_age(policy: DriftPolicy) -> float:
    """A report older than two evaluation intervals (and 10 s) is stale."""
    return report_max_age(policy.spec.wire())
