"""What a DriftPolicy's confirmed drift makes the operator do: a retraining Job (exactly one
per trigger) whose result becomes a new ModelVersion past a validation gate, and a rollback
request to the target deployment. Pure: the DriftPolicy's reconcile gathers the Jobs and
versions, and creates what this decides.

Exactly one Job per trigger: a trigger is first recorded in status (a `RetrainingRun`,
phase Pending, with the Job's deterministic name), written with the resourceVersion it was
decided from, so two writers cannot both record it; only a reconcile that reads a Pending
run creates its Job (creating an existing one of ours is a no-op). An operator killed
between the two steps, or after, finds the run and the Job where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from driftline.api import retraining as contract
from driftline.api.driftpolicy import (
    ActionType,
    DriftPolicy,
    RetrainingRun,
    RollbackTrigger,
    Validation,
)
from driftline.api.modelversion import ModelVersion
from driftline.conditions import find_condition
from driftline.driftstatus import combined_view, report_max_age
from driftline.reconcile.modelversion import JobObservation
from driftline.reconcile.transitions import EventSpec
from driftline.render import retraining as render
from driftline.vocabulary import Severity

ACTIVE = frozenset({"Pending", "Running"})


@dataclass(frozen=True)
class Drift:
    """The policy's confirmed drift now: its severity, features, the version whose pods
    confirmed it, and since when (the Drifted condition's transition: one episode)."""

    severity: Severity
    features: tuple[str, ...]
    version: str
    since: datetime
    message: str


@dataclass
class ActionsDecision:
    status: dict[str, Any]
    events: list[EventSpec] = field(default_factory=list)
    create_jobs: list[dict[str, Any]] = field(default_factory=list)
    create_versions: list[dict[str, Any]] = field(default_factory=list)
    requeue_after: float | None = None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def current_drift(policy: DriftPolicy, status: Mapping[str, Any], now: str) -> Drift | None:
    """The confirmed drift the status shows, or None."""
    drifted = find_condition(status.get("conditions") or [], "Drifted")
    if drifted is None or drifted.get("status") != "True":
        return None
    pods = status.get("pods") or {}
    severity, features, drifted_pods = combined_view(
        pods,
        policy.spec.hysteresis.consecutive_windows,
        now=now,
        max_age_seconds=report_max_age(policy.spec.wire()),
    )
    if severity == "None" or not drifted_pods:
        return None
    versions = [str(pods[p].get("modelVersion") or "") for p in drifted_pods]
    version = max(sorted(set(versions)), key=versions.count)
    since = _time(drifted.get("lastTransitionTime")) or _time(now)
    assert since is not None
    return Drift(
        Severity(severity), tuple(features), version, since, str(drifted.get("message") or "")
    )


def wanted_actions(policy: DriftPolicy, severity: Severity) -> set[ActionType]:
    return {
        ActionType(rule.action)
        for rule in policy.spec.actions
        if severity.rank >= Severity(rule.severity).rank
    }


def validate(
    validation: Validation, metrics: Mapping[str, float], parent_metrics: Mapping[str, float]
) -> str | None:
    """Why the metrics fall short of the gate (with the numbers), or None when they pass."""
    problems = []
    for name, minimum in sorted(validation.min_metrics.items()):
        value = metrics.get(name)
        if value is None:
            problems.append(f"{name} not reported (minimum {minimum:g})")
        elif value < minimum:
            problems.append(f"{name} {value:g} is below the minimum {minimum:g}")
    for name, margin in sorted(validation.max_drop_from_parent.items()):
        value, parent = metrics.get(name), parent_metrics.get(name)
        if parent is None:
            continue  # nothing to compare with: the parent declared no such metric
        if value is None:
            problems.append(f"{name} not reported (parent {parent:g})")
        elif parent - value > margin:
            problems.append(
                f"{name} {value:g} is {parent - value:g} below the parent's {parent:g}, "
                f"more than the margin {margin:g}"
            )
    return "; ".join(problems) or None


def decide_actions(
    owner: Mapping[str, Any],
    policy: DriftPolicy,
    status: dict[str, Any],
    *,
    versions: Mapping[str, Mapping[str, Any]],
    jobs: Mapping[str, JobObservation],
    now: str,
) -> ActionsDecision:
    """Rollback and Retrain for the drift in `status` (already combined for this
    reconcile), and the progress of the retraining runs in flight."""
    decision = ActionsDecision(status=dict(status))
    moment = _time(now)
    assert moment is not None
    drift = current_drift(policy, status, now)
    if drift is not None:
        actions = wanted_actions(policy, drift.severity)
        if ActionType.ROLLBACK in actions:
            _request_rollback(decision, drift, moment)
        if ActionType.RETRAIN in actions and policy.spec.retraining is not None:
            _trigger_retraining(decision, policy, drift, versions, moment)
    _progress(decision, owner, policy, versions, jobs, moment)
    return decision


def _request_rollback(decision: ActionsDecision, drift: Drift, now: datetime) -> None:
    previous = decision.status.get("rollback") or {}
    if (
        previous.get("version") == drift.version
        and (_time(previous.get("at")) or now) >= drift.since
    ):
        return  # this episode's rollback is asked for already
    trigger = RollbackTrigger(
        version=drift.version,
        severity=drift.severity,
        features=list(drift.features),
        at=now,
        message=drift.message[:1024],
    )
    decision.status["rollback"] = trigger.wire()
    decision.events.append(
        EventSpec(
            "Warning",
            "RollbackRequested",
            f"{drift.severity.value} drift of {drift.version} (features: "
            f"{', '.join(drift.features) or 'outputs only'}): traffic goes back to the last "
            "good version",
        )
    )


def _runs(status: Mapping[str, Any]) -> list[RetrainingRun]:
    return [RetrainingRun.model_validate(r) for r in status.get("retrainings") or []]


def _store(decision: ActionsDecision, runs: Sequence[RetrainingRun]) -> None:
    decision.status["retrainings"] = [r.wire() for r in runs][-10:]


def _trigger_retraining(
    decision: ActionsDecision,
    policy: DriftPolicy,
    drift: Drift,
    versions: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> None:
    retraining = policy.spec.retraining
    assert retraining is not None
    runs = _runs(decision.status)
    if any(run.triggered_at >= drift.since for run in runs):
        return  # this episode of drift has its retraining already
    active = [run for run in runs if run.phase in ACTIVE]
    if len(active) >= retraining.max_concurrent:
        return
    last = max((run.triggered_at for run in runs), default=None)
    if last is not None and now - last < timedelta(seconds=retraining.cooldown_seconds):
        decision.requeue_after = (
            last + timedelta(seconds=retraining.cooldown_seconds) - now
        ).total_seconds()
        return
    if drift.version not in versions:
        decision.events.append(
            EventSpec(
                "Warning",
                "RetrainingNotStarted",
                f"drift of {drift.version} calls for retraining, but ModelVersion "
                f"{drift.version} cannot be read",
            )
        )
        return
    number = int(decision.status.get("retrainingCount") or 0) + 1
    name = policy.metadata["name"]
    run = RetrainingRun(
        trigger=f"{name}-{number}",
        job=render.job_name(name, number),
        model_version=render.model_version_name(name, number),
        parent=drift.version,
        severity=drift.severity,
        features=list(drift.features),
        phase="Pending",
        message=f"{drift.severity.value} drift of {drift.version}: Job recorded, created next",
        triggered_at=now,
    )
    decision.status["retrainingCount"] = number
    _store(decision, [*runs, run])
    decision.events.append(
        EventSpec(
            "Normal",
            "RetrainingTriggered",
            f"{drift.severity.value} drift of {drift.version} (features: "
            f"{', '.join(drift.features) or 'outputs only'}): retraining Job {run.job}",
        )
    )
    # The next reconcile (woken by this status write) creates the Job.
    decision.requeue_after = 1.0


def _progress(
    decision: ActionsDecision,
    owner: Mapping[str, Any],
    policy: DriftPolicy,
    versions: Mapping[str, Mapping[str, Any]],
    jobs: Mapping[str, JobObservation],
    now: datetime,
) -> None:
    runs = _runs(decision.status)
    if not runs:
        return
    recorded_before = {r.trigger for r in _runs(owner.get("status") or {})}
    namespace = policy.metadata["namespace"]
    updated = []
    for run in runs:
        if run.phase not in ACTIVE:
            updated.append(run)
            continue
        parent = _model_version(versions.get(run.parent))
        job = jobs.get(run.job, JobObservation("Missing"))
        logs = f"kubectl -n {namespace} logs job/{run.job}"
        if run.phase == "Pending":
            if run.trigger not in recorded_before:
                updated.append(run)  # recorded by this decision: the Job comes next time
                continue
            if job.state == "Missing":
                if parent is None:
                    updated.append(
                        _ended(
                            decision,
                            run,
                            "Failed",
                            f"ModelVersion {run.parent} cannot be read",
                            now,
                        )
                    )
                    continue
                decision.create_jobs.append(
                    render.render_retraining_job(owner, policy, run, parent)
                )
                updated.append(
                    run.model_copy(
                        update={
                            "phase": "Running",
                            "message": f"Job {run.job} created; logs: {logs}",
                        }
                    )
                )
                decision.events.append(
                    EventSpec(
                        "Normal", "RetrainingJobCreated", f"Job {run.job} created; logs: {logs}"
                    )
                )
                continue
        if job.state == "NotOwned":
            updated.append(
                _ended(
                    decision,
                    run,
                    "Failed",
                    f"a Job named {run.job} exists that this policy did not create; its result is not trusted",
                    now,
                )
            )
        elif job.state == "Missing":
            updated.append(
                _ended(decision, run, "Failed", f"Job {run.job} is gone before it finished", now)
            )
        elif job.state == "Failed":
            updated.append(
                _ended(
                    decision,
                    run,
                    "Failed",
                    f"Job {run.job} failed ({job.failure_reason or 'JobFailed'}); logs: {logs}",
                    now,
                )
            )
        elif job.state == "Succeeded":
            updated.append(_finish(decision, policy, run, parent, job, now))
        else:
            updated.append(run.model_copy(update={"phase": "Running"}))
    _store(decision, updated)


def _model_version(raw: Mapping[str, Any] | None) -> ModelVersion | None:
    if raw is None:
        return None
    try:
        return ModelVersion.model_validate(raw)
    except ValueError:
        return None


def _ended(
    decision: ActionsDecision,
    run: RetrainingRun,
    phase: str,
    message: str,
    now: datetime,
    metrics: Mapping[str, float] | None = None,
) -> RetrainingRun:
    reason = {"Failed": "RetrainingFailed", "Rejected": "RetrainingRejected"}.get(
        phase, "RetrainingSucceeded"
    )
    decision.events.append(
        EventSpec("Normal" if phase == "Succeeded" else "Warning", reason, message[:1024])
    )
    return run.model_copy(
        update={
            "phase": phase,
            "message": message[:1024],
            "finished_at": now,
            "metrics": dict(metrics or run.metrics),
        }
    )


def _finish(
    decision: ActionsDecision,
    policy: DriftPolicy,
    run: RetrainingRun,
    parent: ModelVersion | None,
    job: JobObservation,
    now: datetime,
) -> RetrainingRun:
    try:
        result = contract.parse_result(job.message)
    except contract.MalformedResult as error:
        return _ended(
            decision,
            run,
            "Failed",
            f"Job {run.job} succeeded but {error}; no ModelVersion is made",
            now,
        )
    if parent is None:
        return _ended(
            decision,
            run,
            "Failed",
            f"ModelVersion {run.parent} cannot be read; no ModelVersion is made",
            now,
        )
    retraining = policy.spec.retraining
    assert retraining is not None
    rejected = validate(retraining.validation, result.metrics, parent.spec.metrics)
    decision.create_versions.append(
        render.render_retrained_version(policy, run, parent, result, rejected_because=rejected)
    )
    numbers = ", ".join(f"{k} {v:g}" for k, v in sorted(result.metrics.items())) or "no metrics"
    if rejected:
        return _ended(
            decision,
            run,
            "Rejected",
            f"ModelVersion {run.model_version} created and rejected ({numbers}): {rejected}; it is never rolled out",
            now,
            result.metrics,
        )
    return _ended(
        decision,
        run,
        "Succeeded",
        f"ModelVersion {run.model_version} created from Job {run.job} ({numbers})",
        now,
        result.metrics,
    )
