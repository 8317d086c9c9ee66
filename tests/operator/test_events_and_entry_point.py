"""Events for condition transitions, and the operator's command line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from driftline.conditions import make_condition
from driftline.operator import (
    _ObjectFilter,
    _record_factory_with_object,
    build_parser,
    peering_priority,
    replica_identity,
)
from driftline.reconcile.transitions import MESSAGE_LIMIT, condition_events

T0, T1 = "2026-11-23T12:00:00Z", "2026-11-23T12:01:00Z"


def test_no_event_when_nothing_changed():
    conditions = [make_condition("Ready", True, "AllConditionsMet", now=T0)]
    same_later = [make_condition("Ready", True, "AllConditionsMet", "other text", now=T1)]
    assert condition_events(conditions, same_later) == []


def test_one_event_per_write_headed_by_ready():
    old = [
        make_condition("Available", True, "MinimumReplicasAvailable", now=T0),
        make_condition("Ready", True, "AllConditionsMet", now=T0),
    ]
    new = [
        make_condition("Available", False, "NoReplicasAvailable", "0/2", now=T1),
        make_condition("Ready", False, "NoReplicasAvailable", "Available: 0/2", now=T1),
    ]
    (event,) = condition_events(old, new)
    assert (event.type, event.reason) == ("Warning", "NoReplicasAvailable")
    # Headed by Ready with its message; the other changes are named once, not dumped.
    assert event.message == (
        "Ready=False (NoReplicasAvailable): Available: 0/2; "
        "also Available=False (NoReplicasAvailable)"
    )


def test_a_resource_coming_up_is_not_a_warning():
    new = [
        make_condition("Reconciled", True, "ObjectsApplied", now=T1),
        make_condition("Available", False, "NoReplicasAvailable", "0/2", now=T1),
        make_condition("Ready", False, "NoReplicasAvailable", "Available: 0/2", now=T1),
    ]
    (event,) = condition_events([], new)
    assert event.type == "Normal"
    failed = [make_condition("Reconciled", False, "InvalidObject", "422", now=T1)]
    assert condition_events([], failed)[0].type == "Warning"


def test_progressing_alone_is_normal_and_long_messages_are_cut():
    new = [make_condition("Progressing", True, "RollingOut", "x" * 5000, now=T1)]
    (event,) = condition_events([], new)
    assert (event.type, event.reason) == ("Normal", "RollingOut")
    assert len(event.message) == MESSAGE_LIMIT and event.message.endswith("...")


def test_command_line_defaults_and_namespaces():
    args = build_parser().parse_args(["-n", "ml", "-n", "vision", "--metrics-port", "0"])
    assert args.namespace == ["ml", "vision"]
    assert args.metrics_port == 0
    assert build_parser().parse_args([]).namespace == []


def test_log_lines_name_the_object():
    factory = _record_factory_with_object(logging.LogRecord)
    record = factory("kopf.objects", logging.INFO, __file__, 1, "Handler succeeded.", (), None)
    record.k8s_ref = {"namespace": "ml", "name": "churn"}
    assert _ObjectFilter().filter(record)
    assert record.k8s_object == " [ml/churn]"


def test_module_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "driftline.operator", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "--liveness-port" in done.stdout


def test_peering_is_off_unless_named_and_the_priority_can_be_given():
    assert build_parser().parse_args([]).peering is None
    args = build_parser().parse_args(["--peering", "driftline", "--priority", "7"])
    assert (args.peering, args.priority) == ("driftline", 7)


def test_replicas_get_distinct_stable_priorities_from_their_pod_names():
    names = [f"driftline-operator-7d9f8c6b5-{suffix}" for suffix in ("abcde", "fghij", "klmno")]
    priorities = [peering_priority(replica_identity({"POD_ID": name})) for name in names]
    assert len(set(priorities)) == len(names)  # equal priorities would pause every replica
    assert priorities == [peering_priority(name) for name in names]  # stable across restarts
    assert all(1 <= p <= 2**31 - 1 for p in priorities)


def test_outside_a_pod_the_identity_is_the_host_and_process():
    identity = replica_identity({})
    assert identity.endswith(f"/{os.getpid()}") and identity != f"/{os.getpid()}"
