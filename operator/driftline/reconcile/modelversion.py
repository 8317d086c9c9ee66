"""The ModelVersion lifecycle: Pending -> Verifying -> Ready | Failed, then Deprecated and
Retired by the user's label.

Deprecation and retirement are set by the user with the label
``driftline.io/lifecycle: deprecated | retired`` (a label rather than a spec field because
the spec is immutable, and a label lets `kubectl get mv -l driftline.io/lifecycle=retired`
find them). Removing the label makes the version Ready again. Only a verified version
changes phase this way; the label on an unverified one waits until it is verified.
Deprecated versions still serve and can still be rolled out (with a warning); Retired
versions are never rolled out anew, though a deployment already serving one keeps serving
it until it is moved (production is never taken down by a label).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from driftline.api.common import API_VERSION
from driftline.api.modelversion import ModelVersionStatus, Signature
from driftline.conditions import aggregate_ready, find_condition, make_condition, set_conditions
from driftline.reconcile.decision import Decision, ObjectRef
from driftline.reconcile.transitions import EventSpec
from driftline.render.labels import verification_job_name as lbl_verification_job_name

LIFECYCLE_LABEL = "driftline.io/lifecycle"
SERVABLE_PHASES = frozenset({"Ready", "Deprecated"})
VERIFIED_PHASES = frozenset({"Ready", "Deprecated", "Retired"})
JOB_CONTAINER = "verify"

# NotOwned: a Job of the expected name exists but was not created for this ModelVersion
# (its owner reference names another uid, or none): its result is never trusted.
JobState = Literal["Missing", "Running", "Succeeded", "Failed", "NotOwned"]


@dataclass(frozen=True, slots=True)
class JobObservation:
    state: JobState
    # The verify container's termination message, when its pod has terminated.
    message: str | None = None
    # Why the Job failed, from its Failed condition (BackoffLimitExceeded, DeadlineExceeded).
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationResult:
    ok: bool
    reason: str
    message: str
    sha256: str | None = None
    size_bytes: int | None = None
    signature: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ModelVersionDecision:
    status: dict[str, Any]
    create_job: bool
    events: list[EventSpec] = field(default_factory=list)


def observe_job(
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    container: str | None = JOB_CONTAINER,
) -> JobObservation:
    """Summarise a Job and its pods (the termination message of `container`, or of any
    container when None)."""
    if job is None:
        return JobObservation("Missing")
    message = termination_message(pods, container)
    for condition in job.get("status", {}).get("conditions", []) or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobObservation("Succeeded", message)
        if condition.get("type") == "Failed":
            return JobObservation("Failed", message, condition.get("reason") or "JobFailed")
    status = job.get("status", {})
    if status.get("succeeded"):
        return JobObservation("Succeeded", message)
    return JobObservation("Running", message)


def termination_message(
    pods: Sequence[Mapping[str, Any]], container: str | None = JOB_CONTAINER
) -> str | None:
    """The newest terminated message of `container` (of any container when None) over a
    Job's pods (a retried Job has several)."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses", []) or []:
            if container is not None and status.get("name") != container:
                continue
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("message"):
                found.append((terminated.get("finishedAt") or "", terminated["message"]))
    return max(found)[1] if found else None


def parse_verification_message(text: str | None) -> VerificationResult | None:
    """The JSON that driftline-verify writes; None when there is none or it is not ours."""
    if not text:
        return None
    try:
        data = json.loads(text.strip().splitlines()[-1] if text.strip() else text)
    except (json.JSONDecodeError, IndexError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        return None
    size = data.get("sizeBytes")
    signature = data.get("signature")
    return VerificationResult(
        ok=data["ok"],
        reason=str(data.get("reason") or ("Verified" if data["ok"] else "VerificationFailed")),
        message=str(data.get("message") or ""),
        sha256=data.get("sha256") if isinstance(data.get("sha256"), str) else None,
        size_bytes=size if isinstance(size, int) and size >= 0 else None,
        signature=signature if isinstance(signature, dict) else None,
    )


def lifecycle_phase(labels: Mapping[str, str] | None) -> Literal["Ready", "Deprecated", "Retired"]:
    value = (labels or {}).get(LIFECYCLE_LABEL, "").strip().lower()
    if value == "retired":
        return "Retired"
    if value == "deprecated":
        return "Deprecated"
    return "Ready"


def is_servable(status: Mapping[str, Any] | None) -> bool:
    return (status or {}).get("phase") in SERVABLE_PHASES


def _valid_signature(signature: Mapping[str, Any]) -> bool:
    try:
        Signature.model_validate(signature)
    except ValidationError:
        return False
    return True


def _reason(text: str) -> str:
    """A CamelCase reason from whatever the Job reported."""
    cleaned = "".join(part[:1].upper() + part[1:] for part in text.replace("-", " ").split())
    cleaned = "".join(c for c in cleaned if c.isalnum())
    return cleaned if cleaned[:1].isalpha() else "VerificationFailed"


def decide_model_version(
    body: Mapping[str, Any],
    job: JobObservation,
    job_name: str,
    *,
    now: str,
) -> ModelVersionDecision:
    """The next status of a ModelVersion, and whether its verification Job must be created."""
    metadata = body.get("metadata", {})
    generation = metadata.get("generation")
    spec = body.get("spec", {})
    old = dict(body.get("status") or {})
    old_phase = old.get("phase") or "Pending"
    conditions = list(old.get("conditions") or [])
    status: dict[str, Any] = {
        key: value for key, value in old.items() if key not in ("conditions", "kopf")
    }
    status["observedGeneration"] = generation
    create_job = False

    def verified(
        result_status: Literal["True", "False", "Unknown"], reason: str, message: str
    ) -> dict[str, Any]:
        return make_condition(
            "Verified", result_status, reason, message, observed_generation=generation, now=now
        )

    updates: list[dict[str, Any]] = []
    phase: str
    if old_phase in VERIFIED_PHASES and old.get("digest"):
        phase = lifecycle_phase(metadata.get("labels"))
    elif old_phase == "Failed":
        # The spec is immutable, so a failed verification stays failed: a fix is a new version.
        phase = "Failed"
    elif job.state == "NotOwned":
        phase = "Verifying"
        status["verificationJob"] = job_name
        updates.append(
            verified(
                "Unknown",
                "VerificationJobNotOwned",
                f"Job {job_name} exists but was not created by Driftline for this "
                "ModelVersion; its result is not trusted. Delete it to let verification run.",
            )
        )
    elif job.state in ("Missing", "Running"):
        phase = "Verifying"
        create_job = job.state == "Missing"
        status["verificationJob"] = job_name
        updates.append(verified("Unknown", "Verifying", f"verification Job {job_name} is running"))
    else:
        status["verificationJob"] = job_name
        result = parse_verification_message(job.message)
        expected = (spec.get("artifact") or {}).get("sha256")
        if result is None:
            phase = "Failed"
            reason = _reason(job.failure_reason or "NoVerificationResult")
            message = (
                f"verification Job {job_name} failed ({job.failure_reason}) without a result"
                if job.state == "Failed"
                else f"verification Job {job_name} finished without a readable result"
            )
            updates.append(verified("False", reason, message))
            status["message"] = message
        elif not result.ok:
            phase = "Failed"
            updates.append(verified("False", _reason(result.reason), result.message))
            status["message"] = result.message
        elif result.signature is not None and not _valid_signature(result.signature):
            phase = "Failed"
            message = "verification reported a signature that is not a valid inputs/outputs list"
            updates.append(verified("False", "InvalidVerificationResult", message))
            status["message"] = message
        elif result.sha256 != expected:
            # Never trust a report that does not match the spec, whatever it says.
            phase = "Failed"
            message = f"verification reported digest {result.sha256}, spec expects {expected}"
            updates.append(verified("False", "DigestMismatch", message))
            status["message"] = message
        else:
            phase = lifecycle_phase(metadata.get("labels"))
            status["digest"] = result.sha256
            if result.size_bytes is not None:
                status["sizeBytes"] = result.size_bytes
            if result.signature is not None:
                status["signature"] = result.signature
            status["verifiedAt"] = now
            updates.append(verified("True", "Verified", result.message or "artifact verified"))
    status["phase"] = phase
    if phase == "Ready":
        status["message"] = "verified and servable"
        updates.append(
            make_condition(
                "Servable", "True", "Active", "", observed_generation=generation, now=now
            )
        )
    elif phase == "Deprecated":
        status["message"] = "deprecated: still served where in use; move to a newer version"
        updates.append(
            make_condition(
                "Servable",
                "True",
                "Deprecated",
                status["message"],
                observed_generation=generation,
                now=now,
            )
        )
    elif phase == "Retired":
        status["message"] = "retired: never rolled out again"
        updates.append(
            make_condition(
                "Servable",
                "False",
                "Retired",
                status["message"],
                observed_generation=generation,
                now=now,
            )
        )
    elif phase == "Verifying":
        status["message"] = f"verifying in Job {job_name}"
        updates.append(
            make_condition(
                "Servable",
                "False",
                "NotVerified",
                "verification has not finished",
                observed_generation=generation,
                now=now,
            )
        )
    else:
        updates.append(
            make_condition(
                "Servable",
                "False",
                "VerificationFailed",
                status.get("message", ""),
                observed_generation=generation,
                now=now,
            )
        )
    conditions = set_conditions(conditions, updates)
    ready = aggregate_ready(
        conditions, ["Verified", "Servable"], observed_generation=generation, now=now
    )
    conditions = set_conditions(conditions, [ready])
    status["conditions"] = conditions
    events: list[EventSpec] = []
    if (
        job.state == "NotOwned"
        and (find_condition(old.get("conditions") or [], "Verified") or {}).get("reason")
        != "VerificationJobNotOwned"
    ):
        events.append(
            EventSpec(
                "Warning",
                "VerificationJobNotOwned",
                f"Job {job_name} was not created for this ModelVersion; its result is ignored",
            )
        )
    if phase != old_phase or not old:
        warning = phase in ("Failed", "Retired")
        events.append(
            EventSpec(
                "Warning" if warning else "Normal",
                phase if phase != "Ready" else "Verified",
                f"phase {old_phase} -> {phase}: {status.get('message', '')}",
            )
        )
    return ModelVersionDecision(status=status, create_job=create_job, events=events)


def deletion_blockers(name: str, users: Sequence[str]) -> str | None:
    """Why a ModelVersion may not be deleted yet, or None when it may."""
    if not users:
        return None
    listed = ", ".join(sorted(users)[:10]) + (" ..." if len(users) > 10 else "")
    return f"ModelVersion {name} is still used by ModelDeployment(s): {listed}"


# -- the whole reconcile of one ModelVersion ------------------------------------------

KIND = "ModelVersion"
FINALIZER = "driftline.io/finalizer"


def read_status(body: Mapping[str, Any]) -> ModelVersionStatus | None:
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    return ModelVersionStatus.model_validate(raw) if raw else None


def verification_due(status: ModelVersionStatus | None) -> bool:
    """Whether the verification Job still has to be looked at."""
    if status is None:
        return True
    if status.phase in VERIFIED_PHASES and status.digest:
        return False
    return status.phase != "Failed"


def observe_owned_job(
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    owner_uid: str | None,
    container: str | None = JOB_CONTAINER,
) -> JobObservation:
    """observe_job, but a Job that the owner (by uid) did not create is NotOwned."""
    if job is not None:
        references = job.get("metadata", {}).get("ownerReferences") or []
        if not any(r.get("controller") and r.get("uid") == owner_uid for r in references):
            return JobObservation("NotOwned")
    return observe_job(job, pods, container)


@dataclass(frozen=True, slots=True)
class ModelVersionObserved:
    body: Mapping[str, Any]
    job: JobObservation
    # ModelDeployments that want or serve this version, by name.
    users: Sequence[str]


def decide(
    observed: ModelVersionObserved,
    render_job: Callable[[], dict[str, Any]],
    now: str,
    *,
    recheck_seconds: float,
) -> Decision[ModelVersionStatus]:
    """Verification, lifecycle phase, users and the deletion guard of one ModelVersion."""
    body = observed.body
    metadata = body["metadata"]
    job_name = lbl_verification_job_name(metadata["name"])
    old_status = read_status(body)
    old_wire = old_status.wire() if old_status is not None else {}
    users = sorted(set(observed.users))
    finalizers = tuple(metadata.get("finalizers") or ())
    target = ObjectRef(API_VERSION, KIND, metadata["namespace"], metadata["name"])
    common = {
        "target": target,
        "resource_version": metadata.get("resourceVersion"),
        "old_status": old_status,
        "generation": metadata.get("generation"),
        "involved": body,
        "current_finalizers": finalizers,
    }
    if metadata.get("deletionTimestamp"):
        blocked = deletion_blockers(metadata["name"], users)
        status = ModelVersionStatus.model_validate({**old_wire, "usedBy": users})
        if blocked is None:
            remaining = tuple(f for f in finalizers if f != FINALIZER)
            return Decision(status=status, finalizers=remaining, **common)
        # A status fact, and one Event when the blockers change, not one per look.
        before = find_condition(old_wire.get("conditions") or [], "DeletionBlocked")
        blocked_condition = make_condition(
            "DeletionBlocked",
            True,
            "InUse",
            blocked,
            observed_generation=metadata.get("generation"),
            now=now,
        )
        status = ModelVersionStatus.model_validate(
            {
                **old_wire,
                "usedBy": users,
                "conditions": set_conditions(old_wire.get("conditions") or [], [blocked_condition]),
            }
        )
        changed = (
            before is None or before.get("message") != blocked or before.get("status") != "True"
        )
        events = (EventSpec("Warning", "DeletionBlocked", blocked),) if changed else ()
        return Decision(
            status=status,
            events=events,
            requeue_after=recheck_seconds,
            **common,
        )
    decision = decide_model_version({**body, "status": old_wire}, observed.job, job_name, now=now)
    status = ModelVersionStatus.model_validate({**decision.status, "usedBy": users})
    return Decision(
        status=status,
        apply=(render_job(),) if decision.create_job else (),
        events=tuple(decision.events),
        finalizers=tuple(dict.fromkeys([*finalizers, FINALIZER])),
        # No event tells when someone else's Job of that name goes: look again.
        requeue_after=recheck_seconds if observed.job.state == "NotOwned" else None,
        **common,
    )
