"""Server-side printing of built-in kinds (pure): the values in kubectl's usual columns."""

from __future__ import annotations

import datetime

import pytest

from driftline.apiserver.tables import builtin_table, human_duration

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (45, "45s"),
        (119, "119s"),
        (200, "3m20s"),
        (600, "10m"),
        (7500, "125m"),
        (14700, "4h5m"),
        (8 * 3600, "8h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400 + 30 * 86400, "3y30d"),
    ],
)
def test_human_duration_matches_kubectl(seconds, shown):
    assert human_duration(seconds) == shown


def _rows(group: str, plural: str, obj: dict) -> list:
    obj = {"metadata": {"name": "x", "creationTimestamp": "2026-12-01T11:55:00Z"}, **obj}
    printed = builtin_table(group, plural, [obj], "1", NOW)
    assert printed is not None
    return printed["rows"][0]["cells"]


def test_job_status_completions_and_duration():
    job = {
        "spec": {"completions": 3},
        "status": {
            "succeeded": 3,
            "startTime": "2026-12-01T11:56:00Z",
            "completionTime": "2026-12-01T11:58:30Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    assert _rows("batch", "jobs", job)[:5] == ["x", "Complete", "3/3", "2m30s", "5m"]
    running = {"spec": {"parallelism": 2}, "status": {"startTime": "2026-12-01T11:59:00Z"}}
    assert _rows("batch", "jobs", running)[1:4] == ["Running", "0/1 of 2", "60s"]


def test_pod_ready_status_and_restarts():
    pod = {
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 1, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    }
    assert _rows("", "pods", pod)[:4] == ["x", "1/2", "CrashLoopBackOff", 5]


def test_service_ports_and_external_addresses():
    service = {
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.0.0.1",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
        }
    }
    assert _rows("", "services", service)[1:5] == [
        "LoadBalancer",
        "10.0.0.1",
        "<pending>",
        "80:30080/TCP",
    ]


def test_events_have_no_name_column_and_count_repeats():
    event = {
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting\n",
        "involvedObject": {"kind": "Pod", "name": "p"},
        "count": 4,
        "firstTimestamp": "2026-12-01T11:40:00Z",
        "lastTimestamp": "2026-12-01T11:59:00Z",
    }
    printed = builtin_table("", "events", [{"metadata": {"name": "e"}, **event}], "1", NOW)
    assert printed is not None
    assert [c["name"] for c in printed["columnDefinitions"]] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    assert printed["rows"][0]["cells"] == [
        "60s (x4 over 20m)",
        "Warning",
        "BackOff",
        "pod/p",
        "Back-off restarting",
    ]


def test_kinds_without_a_printer_get_none():
    assert builtin_table("rbac.authorization.k8s.io", "roles", [], "1") is None
