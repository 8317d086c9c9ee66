from __future__ import annotations

import pytest

from driftline.conditions import (
    aggregate_ready,
    find_condition,
    is_true,
    make_condition,
    set_condition,
)

T0 = "2026-11-23T10:00:00Z"
T1 = "2026-11-23T11:00:00Z"


def test_make_condition_follows_conventions() -> None:
    condition = make_condition(
        "Available", True, "MinimumReplicasAvailable", "2/2", observed_generation=4, now=T0
    )
    assert condition == {
        "type": "Available",
        "status": "True",
        "reason": "MinimumReplicasAvailable",
        "message": "2/2",
        "lastTransitionTime": T0,
        "observedGeneration": 4,
    }


@pytest.mark.parametrize(
    ("type_", "reason"), [("ready", "Ok"), ("Ready", "not camel"), ("Ready", "")]
)
def test_non_camel_case_is_refused(type_: str, reason: str) -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        make_condition(type_, "True", reason)


def test_transition_time_moves_only_when_status_changes() -> None:
    conditions = [make_condition("Drifted", False, "NoDrift", now=T0)]
    same = set_condition(
        conditions, make_condition("Drifted", False, "NoDrift", "checked again", now=T1)
    )
    assert same[0]["lastTransitionTime"] == T0 and same[0]["message"] == "checked again"
    flipped = set_condition(same, make_condition("Drifted", True, "FeaturesDrifted", now=T1))
    assert flipped[0]["lastTransitionTime"] == T1 and len(flipped) == 1
    assert is_true(flipped, "Drifted")


def test_set_condition_appends_new_types_and_keeps_others() -> None:
    conditions = [make_condition("A", True, "Yes", now=T0)]
    result = set_condition(conditions, make_condition("B", False, "No", now=T1))
    assert [c["type"] for c in result] == ["A", "B"]
    assert conditions == [make_condition("A", True, "Yes", now=T0)], "input is not mutated"


def test_aggregate_ready() -> None:
    conditions = [
        make_condition("Available", True, "MinimumReplicasAvailable", now=T0),
        make_condition("Verified", False, "ChecksumMismatch", "digest differs", now=T0),
    ]
    ready = aggregate_ready(conditions, ["Available", "Verified"], now=T1)
    assert (ready["status"], ready["reason"]) == ("False", "ChecksumMismatch")
    assert "digest differs" in ready["message"]
    unknown = aggregate_ready(conditions, ["Available", "Progressing"], now=T1)
    assert (unknown["status"], unknown["reason"]) == ("Unknown", "ProgressingUnknown")
    ok = aggregate_ready(conditions[:1], ["Available"], now=T1)
    assert ok["status"] == "True" and find_condition([ok], "Ready") == ok
