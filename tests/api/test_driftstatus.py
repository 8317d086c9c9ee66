from __future__ import annotations

from driftline.driftstatus import (
    combined_status,
    combined_view,
    merge_pod_report,
    prune_gone_pods,
    quorum,
    report_max_age,
)

NOW = "2026-11-23T12:00:00Z"


def report(
    drifted: bool, consecutive: int, severity: str = "Medium", features=("age",), samples=500
):
    return {
        "evaluation": {
            "time": NOW,
            "samples": samples,
            "invalidSamples": 0,
            "drifted": drifted,
            "severity": severity if drifted else "None",
            "features": [
                {
                    "name": f,
                    "test": "KolmogorovSmirnov",
                    "statistic": 0.3,
                    "pValue": 1e-9,
                    "drifted": drifted,
                }
                for f in features
            ],
        },
        "consecutiveDrifted": consecutive,
        "modelVersion": "churn-v2",
    }


def drifted_condition(status):
    return next(c for c in status["conditions"] if c["type"] == "Drifted")


def test_no_drift() -> None:
    status = merge_pod_report(
        None, "pod-a", report(False, 0), consecutive_windows=3, generation=2, now=NOW
    )
    condition = drifted_condition(status)
    assert (condition["status"], condition["reason"], condition["observedGeneration"]) == (
        "False",
        "NoDrift",
        2,
    )
    assert status["severity"] == "None"


def test_drift_needs_consecutive_windows() -> None:
    status = merge_pod_report(
        None, "pod-a", report(True, 2), consecutive_windows=3, generation=1, now=NOW
    )
    assert drifted_condition(status)["reason"] == "AwaitingConfirmation"
    status = merge_pod_report(
        status, "pod-a", report(True, 3), consecutive_windows=3, generation=1, now=NOW
    )
    condition = drifted_condition(status)
    assert (
        condition["status"] == "True"
        and "age" in condition["message"]
        and "pod-a" in condition["message"]
    )
    assert status["severity"] == "Medium"


def test_pods_do_not_overwrite_each_other() -> None:
    status = merge_pod_report(
        None,
        "pod-a",
        report(True, 5, "High", ("age", "income")),
        consecutive_windows=3,
        generation=1,
        now=NOW,
    )
    status = merge_pod_report(
        status, "pod-b", report(False, 0), consecutive_windows=3, generation=1, now=NOW
    )
    assert set(status["pods"]) == {"pod-a", "pod-b"}
    assert status["severity"] == "High", "one pod with confirmed drift keeps the policy drifted"
    assert combined_view(status["pods"], 3) == ("High", ["age", "income"], ["pod-a"])


def test_insufficient_samples_is_unknown() -> None:
    status = merge_pod_report(
        None, "pod-a", report(False, 0, samples=0), consecutive_windows=3, generation=1, now=NOW
    )
    assert drifted_condition(status)["status"] == "Unknown"


def test_transition_time_kept_while_status_holds() -> None:
    first = merge_pod_report(
        None, "a", report(False, 0), consecutive_windows=1, generation=1, now=NOW
    )
    later = merge_pod_report(
        first,
        "a",
        report(False, 0),
        consecutive_windows=1,
        generation=1,
        now="2026-11-23T13:00:00Z",
    )
    assert drifted_condition(later)["lastTransitionTime"] == NOW


def test_prune_gone_pods_recomputes_the_verdict() -> None:
    status = merge_pod_report(
        None, "a", report(False, 0), consecutive_windows=2, generation=1, now=NOW
    )
    status = merge_pod_report(
        status, "gone", report(True, 3, "High"), consecutive_windows=2, generation=1, now=NOW
    )
    assert drifted_condition(status)["status"] == "True"
    patch = prune_gone_pods(status, {"a"}, consecutive_windows=2, generation=1, now=NOW)
    assert patch is not None
    assert patch["pods"] == {"gone": None}, "a merge patch: null deletes the gone pod's key"
    assert patch["severity"] == "None"
    assert drifted_condition(patch)["reason"] == "NoDrift"


def test_prune_gone_pods_is_none_when_every_pod_lives() -> None:
    status = merge_pod_report(
        None, "a", report(False, 0), consecutive_windows=2, generation=1, now=NOW
    )
    assert prune_gone_pods(status, {"a", "b"}, consecutive_windows=2, generation=1, now=NOW) is None
    assert prune_gone_pods(None, set(), consecutive_windows=2, generation=1, now=NOW) is None


def test_pods_that_cannot_evaluate_make_drift_unknown_not_insufficient_samples():
    from driftline.driftstatus import combined_status

    status = combined_status(
        {},
        {"p1": {"state": "NotEvaluating", "reason": "ReferenceUnavailable", "message": "503"}},
        consecutive_windows=3,
        generation=1,
        now="2026-12-01T00:00:00Z",
    )
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "NotEvaluating")
    assert "ReferenceUnavailable" in drifted["message"]


# --- freshness and quorum (issue 16: one verdict per policy) --------------------------

LATER = "2026-11-23T12:05:00Z"  # five minutes after NOW


def at(report_: dict, time: str, version: str = "churn-v2") -> dict:
    return {
        **report_,
        "evaluation": {**report_["evaluation"], "time": time},
        "modelVersion": version,
    }


def test_quorum_is_half_of_a_versions_pods_rounded_up() -> None:
    assert [quorum(n) for n in (0, 1, 2, 3, 4, 5)] == [1, 1, 1, 2, 2, 3]


def test_report_max_age_is_two_intervals_and_ten_seconds() -> None:
    assert report_max_age({"window": {"intervalSeconds": 60}}) == 130
    assert report_max_age(None) == 130


def test_a_stale_report_no_longer_makes_the_policy_drifted() -> None:
    pods = {"pod-a": at(report(True, 3, "High"), NOW)}
    fresh = combined_status(
        None, pods, consecutive_windows=3, generation=1, now=NOW, max_age_seconds=130
    )
    assert (fresh["severity"], drifted_condition(fresh)["status"]) == ("High", "True")
    stale = combined_status(
        fresh, pods, consecutive_windows=3, generation=1, now=LATER, max_age_seconds=130
    )
    assert stale["severity"] == "None"
    condition = drifted_condition(stale)
    assert (condition["status"], condition["reason"]) == ("Unknown", "NoFreshReport")
    assert stale["pods"] == pods  # kept: pruning is for pods that are gone


def test_one_pod_of_three_is_not_a_quorum() -> None:
    pods = {
        "a": at(report(True, 3, "High"), NOW),
        "b": at(report(False, 0), NOW),
        "c": at(report(False, 0), NOW),
    }
    status = combined_status(None, pods, consecutive_windows=3, generation=1, now=NOW)
    assert status["severity"] == "None"
    assert drifted_condition(status)["reason"] == "AwaitingConfirmation"
    pods["b"] = at(report(True, 3, "Medium"), NOW)
    status = combined_status(None, pods, consecutive_windows=3, generation=1, now=NOW)
    # two of three confirm: drifted, at the severity both reach
    assert (status["severity"], drifted_condition(status)["status"]) == ("Medium", "True")


def test_the_quorum_is_counted_per_version() -> None:
    pods = {
        "stable-a": at(report(False, 0), NOW, "churn-v1"),
        "stable-b": at(report(False, 0), NOW, "churn-v1"),
        "canary-a": at(report(True, 3, "High", features=("tenure",)), NOW, "churn-v2"),
    }
    severity, features, drifted = combined_view(pods, 3)
    assert (severity, features, drifted) == ("High", ["tenure"], ["canary-a"])
