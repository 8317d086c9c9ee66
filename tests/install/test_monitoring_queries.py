"""The chart's monitoring queries, read by Prometheus' own parser (promtool): the alert
rules pass `promtool check rules`, the alerts fire as `promtool test rules` says they
should on made-up series, every dashboard panel's query and the prometheus-adapter
queries parse, and every metric they name is one Driftline exports (or one of the three
documented as coming from the analysis, rollback and retraining work)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.install.helm_support import CHART, one, render, require_promtool

# Exported by work that is still to land; docs/install.md lists them with their labels.
# Metrics the chart queries before any process exports them (none today).
FUTURE_METRICS: set[str] = set()
# The operator's analysis, rollback and retraining metrics, which the alerts read.
OPERATOR_ACTION_METRICS = {
    "driftline_analysis_verdicts_total",
    "driftline_rollbacks_total",
    "driftline_retraining_jobs_total",
}


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    home = tmp_path_factory.mktemp("helm-home")
    return render(home, [CHART / "ci" / "monitoring-values.yaml"])


@pytest.fixture(scope="module")
def rule_groups(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = one(objects, "PrometheusRule")["spec"]["groups"]
    return groups


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_promtool(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def dashboard_queries(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    config_map = one(objects, "ConfigMap", "driftline-dashboard")
    dashboard = json.loads(config_map["data"]["driftline.json"])
    return [
        (f"panel {panel['id']} {target['refId']} ({panel['title']})", target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def adapter_queries(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The adapter's series query, and its metrics query with its Go template filled in
    as the adapter fills it for one pod."""
    config_map = one(objects, "ConfigMap", "driftline-prometheus-adapter")
    queries = []
    for rule in yaml.safe_load(config_map["data"]["config.yaml"])["rules"]:
        metrics_query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", rule["name"]["as"])
            .replace("<<.LabelMatchers>>", 'namespace="ml",pod="churn-0"')
            .replace("<<.GroupBy>>", "pod")
        )
        assert "<<" not in metrics_query, metrics_query
        queries += [("adapter series", rule["seriesQuery"]), ("adapter metrics", metrics_query)]
    return queries


def as_promql(grafana_expr: str) -> str:
    """A Grafana query with its variables as Grafana would substitute them."""
    return (
        grafana_expr.replace("$__rate_interval", "1m")
        .replace("$namespace", ".*")
        .replace("$deployment", ".*")
    )


def check_expressions(
    queries: list[tuple[str, str]], directory: Path
) -> subprocess.CompletedProcess[str]:
    """promtool check rules on a rule file that records each query."""
    rules = [
        {"record": f"driftline:check:{index}", "expr": as_promql(expr)}
        for index, (_, expr) in enumerate(queries)
    ]
    path = directory / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    return promtool("check", "rules", path.name, cwd=directory)


def test_promtool_accepts_the_alert_rules(rule_groups: list[dict[str, Any]], tmp_path: Path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}))
    done = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = [rule["alert"] for group in rule_groups for rule in group["rules"]]
    assert f"SUCCESS: {len(alerts)} rules found" in done.stdout
    assert sorted(alerts) == [
        "DriftlineAnalysisFailed",
        "DriftlineDriftConfirmed",
        "DriftlineReconcileErrors",
        "DriftlineRetrainingFailed",
        "DriftlineRollbackHappened",
        "DriftlineServingErrorRate",
        "DriftlineServingLatencyHigh",
    ]


def test_promtool_refuses_a_broken_rule(rule_groups: list[dict[str, Any]], tmp_path: Path):
    # the check above could fail: a query with a parse error is caught
    broken = json.loads(json.dumps(rule_groups))
    broken[0]["rules"][0]["expr"] = "max by (namespace (driftline_drift_detected)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": broken}))
    done = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def test_every_dashboard_and_adapter_query_parses(objects: list[dict[str, Any]], tmp_path: Path):
    queries = dashboard_queries(objects) + adapter_queries(objects)
    assert len(queries) >= 12
    done = check_expressions(queries, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


# The alerts on made-up series: each fires only after its `for`, with the labels that say
# where to look, and not at all on healthy series.
ALERT_TESTS = [
    {
        "interval": "1m",
        "input_series": [
            {
                "series": 'driftline_inference_requests_total{namespace="ml",deployment="churn",version="churn-v2",track="canary",outcome="success",pod="a"}',
                "values": "0+90x30",
            },
            {
                "series": 'driftline_inference_requests_total{namespace="ml",deployment="churn",version="churn-v2",track="canary",outcome="error",pod="a"}',
                "values": "0+10x30",
            },
            {
                "series": 'driftline_inference_requests_total{namespace="ml",deployment="churn",version="churn-v1",track="stable",outcome="success",pod="b"}',
                "values": "0+100x30",
            },
            {
                "series": 'driftline_drift_detected{namespace="ml",deployment="churn",pod="a"}',
                "values": "0x5 1x25",
            },
            {
                "series": 'driftline_rollbacks_total{namespace="ml",deployment="churn"}',
                "values": "0x10 1x20",
            },
            {
                "series": 'driftline_operator_reconcile_errors_total{kind="ModelDeployment",reason="ApiException"}',
                "values": "0+1x30",
            },
        ],
        "alert_rule_test": [
            # 10% errors on churn-v2 (above 2%): pending for 5m, then firing; churn-v1 is fine
            {"eval_time": "4m", "alertname": "DriftlineServingErrorRate", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "DriftlineServingErrorRate",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "namespace": "ml",
                            "deployment": "churn",
                            "version": "churn-v2",
                        },
                        "exp_annotations": {
                            "summary": "ml/churn version churn-v2 fails 10% of requests",
                            "description": "More than 0.02 of the inference requests to version "
                            "churn-v2 failed (outcome error or unavailable) for 5 minutes.",
                        },
                    }
                ],
            },
            # drifted from minute 5: confirmed only after 10 minutes of it
            {"eval_time": "12m", "alertname": "DriftlineDriftConfirmed", "exp_alerts": []},
            {
                "eval_time": "16m",
                "alertname": "DriftlineDriftConfirmed",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": "ml",
                            "deployment": "churn",
                        },
                        "exp_annotations": {
                            "summary": "Drift on ml/churn",
                            "description": "The drift sidecar of ml/churn has found the live "
                            "inputs drifted from the reference for 10 minutes. See the "
                            "DriftPolicy's status (kubectl get driftpolicy -n ml).",
                        },
                    }
                ],
            },
            # a rollback at minute 10 alerts, and the alert clears once it is 15m old
            {"eval_time": "8m", "alertname": "DriftlineRollbackHappened", "exp_alerts": []},
            {
                "eval_time": "13m",
                "alertname": "DriftlineRollbackHappened",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": "ml",
                            "deployment": "churn",
                        },
                        "exp_annotations": {
                            "summary": "ml/churn was rolled back",
                            "description": "Traffic of ml/churn went back to the last good "
                            "version in the last 15 minutes (a failed analysis or drift).",
                        },
                    }
                ],
            },
            {"eval_time": "29m", "alertname": "DriftlineRollbackHappened", "exp_alerts": []},
            # reconcile errors for 15 minutes
            {"eval_time": "10m", "alertname": "DriftlineReconcileErrors", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "DriftlineReconcileErrors",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "kind": "ModelDeployment",
                            "reason": "ApiException",
                        },
                        "exp_annotations": {
                            "summary": "Driftline fails to reconcile ModelDeployment (ApiException)",
                            "description": "ModelDeployment reconciles have failed with "
                            "ApiException for 15 minutes; the operator retries with backoff. "
                            "Its log and the resources' Reconciled condition say why.",
                        },
                    }
                ],
            },
            # nothing about analysis or retraining in these series
            {"eval_time": "20m", "alertname": "DriftlineAnalysisFailed", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "DriftlineRetrainingFailed", "exp_alerts": []},
        ],
    }
]


def test_the_alerts_fire_after_their_for_with_their_labels(
    rule_groups: list[dict[str, Any]], tmp_path: Path
):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups}))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": ALERT_TESTS}
        )
    )
    done = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def exported_metric_names() -> set[str]:
    """Every sample name Driftline's three processes can export, from their registries."""
    import driftline.handlers.metrics  # noqa: F401  (registers the operator's metrics)
    from driftline_serving.evaluator.metrics import EvaluatorMetrics
    from driftline_serving.server.metrics import ServerMetrics

    registries: list[CollectorRegistry] = [
        prometheus_client.REGISTRY,
        ServerMetrics("churn", "1").registry,
        EvaluatorMetrics().registry,
    ]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = set()
    for registry in registries:
        for family in registry.collect():
            for suffix in suffixes.get(family.type, ("",)):
                names.add(family.name + suffix)
    return {name for name in names if name.startswith("driftline_")}


def test_every_metric_queried_is_exported_or_documented(
    objects: list[dict[str, Any]], rule_groups: list[dict[str, Any]]
):
    expressions = [rule["expr"] for group in rule_groups for rule in group["rules"]]
    expressions += [expr for _, expr in dashboard_queries(objects) + adapter_queries(objects)]
    queried = {name for expr in expressions for name in re.findall(r"\bdriftline_[a-z_]+", expr)}
    exported = exported_metric_names()
    assert "driftline_inference_requests_total" in exported  # the reading above works
    assert queried - exported == FUTURE_METRICS
    assert queried & exported >= OPERATOR_ACTION_METRICS
    documented = (Path(__file__).resolve().parents[2] / "docs" / "install.md").read_text()
    for name in FUTURE_METRICS | OPERATOR_ACTION_METRICS:
        assert name in documented
