"""DriftPolicy decisions: readiness, what the operator acts on, Alert actions with their
cooldown, and pruning the reports of serving pods that are gone.

The evaluators (one per serving pod) write `status.pods` and the Drifted condition; the
operator owns the rest of the status. Both write with the resourceVersion they read, so
neither loses the other's update.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from driftline.api.common import API_VERSION
from driftline.api.driftpolicy import DriftPolicy, DriftPolicyStatus
from driftline.conditions import aggregate_ready, find_condition, make_condition, set_conditions
from driftline.driftstatus import combined_status, prune_gone_pods, report_max_age
from driftline.reconcile.decision import Decision, ObjectRef
from driftline.reconcile.drift_actions import decide_actions
from driftline.reconcile.modelversion import JobObservation
from driftline.reconcile.transitions import EventSpec, condition_events
from driftline.vocabulary import Severity

KIND = "DriftPolicy"
READY_REQUIRES = ("TargetFound", "Evaluating")
# Actions the operator carries out today; the others are reported as not implemented.
IMPLEMENTED_ACTIONS = frozenset({"Alert", "Retrain", "Rollback"})


@dataclass(frozen=True, slots=True)
class DriftPolicyObserved:
    body: Mapping[str, Any]
    target_exists: bool
    # Names of the target's serving pods, when they were listed this time (None: not
    # listed, so no report is pruned).
    live_pods: Collection[str] | None = None
    # ModelVersions the actions may need (those the pods report serving, the parents of
    # retraining runs), by name.
    versions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The retraining Jobs of runs in flight, by name.
    jobs: Mapping[str, JobObservation] = field(default_factory=dict)


def read_status(body: Mapping[str, Any]) -> DriftPolicyStatus | None:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    return DriftPolicyStatus.model_validate(raw) if raw else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def not_implemented(spec: Mapping[str, Any]) -> list[str]:
    found = sorted(
        {
            f"spec.actions {rule.get('action')}: not implemented yet: the DriftPolicy "
            "records the request in status.rollback, the deployment does not act on it yet"
            for rule in spec.get("actions") or []
            if rule.get("action") not in IMPLEMENTED_ACTIONS
        }
    )
    return found


def _alert_due(spec: Mapping[str, Any], status: Mapping[str, Any], now: str) -> tuple[bool, str]:
    """Whether confirmed drift calls for a new Alert now, and the drift it is about."""
    drifted = find_condition(status.get("conditions") or [], "Drifted")
    if drifted is None or drifted.get("status") != "True":
        return False, ""
    severity = Severity(status.get("severity") or "None")
    rules = spec.get("actions") or [{"severity": "Low", "action": "Alert"}]
    if not any(
        rule.get("action") == "Alert" and severity.rank >= Severity(rule["severity"]).rank
        for rule in rules
    ):
        return False, ""
    since = _parse_time(drifted.get("lastTransitionTime"))
    last = _parse_time(status.get("lastActionTime"))
    if last is not None and since is not None and last >= since:
        return False, ""  # this episode of drift was already announced
    cooldown = int((spec.get("hysteresis") or {}).get("cooldownSeconds", 3600))
    current = _parse_time(now)
    if last is not None and current is not None and current - last < timedelta(seconds=cooldown):
        return False, ""
    return True, str(drifted.get("message") or "")


def decide(
    observed: DriftPolicyObserved, now: str, *, recheck_seconds: float
) -> Decision[DriftPolicyStatus]:
    body = observed.body
    metadata = body["metadata"]
    generation = metadata.get("generation")
    spec = dict(body.get("spec") or {})
    old_status = read_status(body)
    old = old_status.wire() if old_status is not None else {}
    status: dict[str, Any] = dict(old)
    events: list[EventSpec] = []
    policy: DriftPolicy | None
    try:
        policy = DriftPolicy.model_validate(body)
        consecutive = policy.spec.hysteresis.consecutive_windows
    except ValidationError:
        policy, consecutive = None, 3

    if observed.live_pods is not None:
        pruned = prune_gone_pods(
            status,
            set(observed.live_pods),
            consecutive_windows=consecutive,
            generation=generation,
            now=now,
        )
        if pruned is not None:
            gone = set(pruned["pods"])  # the patch names each gone pod with a null
            pods = {k: v for k, v in (status.get("pods") or {}).items() if k not in gone}
            status = {**status, **pruned, "pods": pods}

    if status.get("pods"):
        # The combined verdict counts fresh reports only: one that went stale since the
        # last write (a sidecar that stopped, a pod not yet pruned) no longer decides.
        status = combined_status(
            status,
            dict(status["pods"]),
            consecutive_windows=consecutive,
            generation=generation,
            now=now,
            max_age_seconds=report_max_age(spec),
        )

    target = (spec.get("targetRef") or {}).get("name", "")

    def condition(type_: str, value: bool, reason: str, message: str) -> dict[str, Any]:
        return make_condition(
            type_, value, reason, message, observed_generation=generation, now=now
        )

    updates = [
        condition("TargetFound", True, "TargetExists", f"ModelDeployment {target} exists")
        if observed.target_exists
        else condition(
            "TargetFound",
            False,
            "TargetNotFound",
            f"ModelDeployment {target} does not exist in this namespace; the policy waits for it",
        )
    ]
    not_evaluating = {
        pod: report
        for pod, report in sorted((status.get("pods") or {}).items())
        if report.get("state") == "NotEvaluating"
    }
    if not_evaluating:
        first = next(iter(not_evaluating.values()))
        updates.append(
            condition(
                "Evaluating",
                False,
                str(first.get("reason") or "NotEvaluating"),
                "; ".join(
                    f"{pod}: {report.get('message') or report.get('reason')}"
                    for pod, report in not_evaluating.items()
                )
                + " (the pods keep serving)",
            )
        )
    else:
        updates.append(
            condition(
                "Evaluating",
                True,
                "Evaluating" if status.get("pods") else "NoReportYet",
                "every reporting pod evaluates drift"
                if status.get("pods")
                else "no serving pod has reported yet",
            )
        )
    unsupported = not_implemented(spec)
    updates.append(
        condition("Supported", False, "NotImplemented", "; ".join(unsupported))
        if unsupported
        else condition("Supported", True, "AllFieldsSupported", "every field set is acted on")
    )
    conditions = set_conditions(status.get("conditions") or [], updates)
    ready = aggregate_ready(conditions, READY_REQUIRES, observed_generation=generation, now=now)
    conditions = set_conditions(conditions, [ready])
    status["conditions"] = conditions
    status["observedGeneration"] = generation

    due, drift = _alert_due(spec, status, now)
    if due:
        events.append(
            EventSpec("Warning", "DriftAlert", f"severity {status.get('severity')}: {drift}"[:1024])
        )
        status["lastAction"] = "Alert"
        status["lastActionTime"] = now
    create_jobs: list[dict[str, Any]] = []
    create_versions: list[dict[str, Any]] = []
    requeue = recheck_seconds if status.get("pods") else None
    if policy is not None and observed.target_exists:
        actions = decide_actions(
            body, policy, status, versions=observed.versions, jobs=observed.jobs, now=now
        )
        status = actions.status
        events += actions.events
        create_jobs, create_versions = actions.create_jobs, actions.create_versions
        if actions.requeue_after is not None:
            requeue = min(requeue or actions.requeue_after, actions.requeue_after)
    events = condition_events(old.get("conditions") or [], conditions) + events
    new_status = DriftPolicyStatus.model_validate(status)
    return Decision(
        target=ObjectRef(API_VERSION, KIND, metadata["namespace"], metadata["name"]),
        resource_version=metadata.get("resourceVersion"),
        old_status=old_status,
        status=new_status,
        events=tuple(events),
        generation=generation,
        involved=body,
        apply=tuple(create_jobs),
        create_once=tuple(create_versions),
        # Reports of gone pods are looked for again later.
        requeue_after=requeue,
    )
