"""The Helm chart, rendered by the real helm over every values file in charts/driftline/ci:
lint-clean, every object valid against Kubernetes' schemas (custom resources against
their own), least privilege as files/operator-rules.yaml says, the operator hardened,
and its environment and flags what the operator's own code reads."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from driftline.api.kopfpeering import peering_crds
from driftline.cli.crds import chart_crds
from driftline.handlers.context import OperatorSettings
from driftline.operator import build_parser
from driftline.render import labels as lbl
from driftline.render.deployment import render_deployment
from driftline.render.hpa import INFLIGHT_METRIC
from driftline.render.settings import DEFAULT_SERVING_IMAGE, RenderSettings
from tests.install.helm_support import (
    CHART,
    CI_VALUES,
    ROOT,
    by_kind,
    one,
    render,
    require_helm,
    run_helm,
    template_args,
    walk_schema,
)
from tests.install.monitoring_schemas import MONITORING_SCHEMAS

KUBERNETES = "1.31"
OPERATOR_RULES = yaml.safe_load((CHART / "files" / "operator-rules.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="module")
def rendered(home: Path) -> Any:
    """values file -> the chart's objects; each rendered once per module."""

    @cache
    def by_values(*sets: str, values: str | None = None) -> list[dict[str, Any]]:
        files = [CHART / "ci" / values] if values else []
        return render(home, files, sets)

    return by_values


def operator_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "driftline-operator")


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = operator_deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in operator_container(objects)["env"]}


def operator_args(objects: list[dict[str, Any]]) -> Any:
    """The container's arguments, parsed by the operator's own command line."""
    return build_parser().parse_args(operator_container(objects)["args"])


def test_there_is_a_values_file_for_each_case_ci_covers():
    assert {p.name for p in CI_VALUES} == {
        "default-values.yaml",
        "monitoring-values.yaml",
        "namespaced-values.yaml",
        "replicas-values.yaml",
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_strict_passes(values: Path, home: Path):
    done = run_helm(["lint", "--strict", str(CHART), "--values", str(values)], home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def validate(obj: dict[str, Any]) -> None:
    """Built-in kinds against Kubernetes' schemas; custom resources against their own."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    custom = {**MONITORING_SCHEMAS, **peering_object_schemas()}
    if (api_version, kind) in custom:
        jsonschema.validate(obj, custom[(api_version, kind)])
    else:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@cache
def peering_object_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for crd in peering_crds().values():
        version = crd["spec"]["versions"][0]
        schema = {**version["schema"]["openAPIV3Schema"]}
        schema["properties"] = {
            **schema["properties"],
            "apiVersion": {"const": f"{crd['spec']['group']}/{version['name']}"},
            "kind": {"const": crd["spec"]["names"]["kind"]},
            "metadata": {"type": "object", "required": ["name"]},
        }
        schemas[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = {
            **schema,
            "required": ["apiVersion", "kind", "metadata"],
            "additionalProperties": False,
        }
    return schemas


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_rendered_object_is_valid(values: Path, rendered: Any):
    objects = rendered(values=values.name)
    assert objects
    for obj in objects:
        validate(obj)


def test_the_validation_catches_a_broken_object(rendered: Any):
    deployment = json.loads(json.dumps(operator_deployment(rendered())))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    objects = rendered(values="monitoring-values.yaml")
    monitor = json.loads(json.dumps(by_kind(objects, "PodMonitor")[0]))
    monitor["spec"]["podMetricsEndpoints"][0]["prot"] = "metrics"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


def test_the_chart_crds_are_the_generated_ones(rendered: Any):
    crds = {obj["metadata"]["name"]: obj for obj in by_kind(rendered(), "CustomResourceDefinition")}
    expected = {doc["metadata"]["name"]: doc for doc in chart_crds().values()}
    assert crds == expected


def test_the_operator_runs_hardened(rendered: Any):
    objects = rendered()
    pod = operator_deployment(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (operator/Dockerfile)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = operator_container(objects)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # the one writable place is /tmp, the image's HOME
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["image"] == "ghcr.io/driftline/driftline-operator:0.1.0"


def test_probes_call_kopfs_health_endpoint_on_the_operators_liveness_port(rendered: Any):
    container = operator_container(rendered())
    args = operator_args(rendered())
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": args.liveness_port, "metrics": args.metrics_port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}


def test_one_replica_runs_standalone_and_is_replaced_not_rolled(rendered: Any):
    objects = rendered()
    args = operator_args(objects)
    assert args.peering is None and args.namespace == []
    assert operator_deployment(objects)["spec"]["strategy"] == {"type": "Recreate"}
    assert not by_kind(objects, "ClusterKopfPeering") and not by_kind(objects, "KopfPeering")


def test_the_cluster_role_holds_exactly_the_operator_rules(rendered: Any):
    objects = rendered()
    role = one(objects, "ClusterRole", "driftline-operator")
    assert role["rules"] == OPERATOR_RULES
    binding = one(objects, "ClusterRoleBinding", "driftline-operator")
    assert binding["roleRef"]["name"] == "driftline-operator"
    account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": "driftline-system",
        }
    ]
    assert (
        operator_deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")


def test_watched_namespaces_get_roles_there_and_namespace_flags(rendered: Any):
    objects = rendered(values="namespaced-values.yaml")
    assert operator_args(objects).namespace == ["ml-team", "vision"]
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role")}
    assert set(roles) == {"ml-team", "vision"}
    assert all(role["rules"] == OPERATOR_RULES for role in roles.values())
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(objects, "RoleBinding")}
    assert set(bindings) == {"ml-team", "vision"}
    for binding in bindings.values():
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "driftline-operator",
        }
        assert binding["subjects"][0]["namespace"] == "driftline-system"


def test_two_replicas_share_a_cluster_peering_with_its_grants(rendered: Any):
    objects = rendered(values="replicas-values.yaml")
    deployment = operator_deployment(objects)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert operator_args(objects).peering == "driftline-ha"
    # kopf names each replica by POD_ID; the operator derives its priority from it
    env = operator_container(objects)["env"]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
    peering = one(objects, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "driftline-ha"
    role = one(objects, "ClusterRole", "driftline-operator-peering")
    assert role["rules"] == [
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "patch"],
        }
    ]
    assert one(objects, "ClusterRole", "driftline-operator")["rules"] == OPERATOR_RULES
    binding = one(objects, "ClusterRoleBinding", "driftline-operator-peering")
    assert binding["roleRef"]["name"] == "driftline-operator-peering"


def test_peered_replicas_of_a_namespaced_operator_peer_in_each_namespace(rendered: Any):
    objects = rendered("operator.replicas=3", values="namespaced-values.yaml")
    peerings = by_kind(objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["ml-team", "vision"]
    assert {p["metadata"]["name"] for p in peerings} == {"driftline"}
    assert not by_kind(objects, "ClusterKopfPeering")
    peering_roles = [
        r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-peering")
    ]
    assert sorted(r["metadata"]["namespace"] for r in peering_roles) == ["ml-team", "vision"]
    assert all(r["rules"][0]["resources"] == ["kopfpeerings"] for r in peering_roles)
    for obj in objects:
        validate(obj)


def test_the_environment_is_what_the_operator_reads(rendered: Any):
    env = environment(rendered())
    render_settings = RenderSettings.from_environment(env)
    assert render_settings.serving_image == DEFAULT_SERVING_IMAGE  # the chart's default agrees
    assert render_settings.cluster_domain == "cluster.local"
    operator_settings = OperatorSettings.from_environment(env)
    assert operator_settings.workers == VALUES["operator"]["workers"]
    assert operator_settings.resync_seconds == VALUES["operator"]["resyncSeconds"]
    assert "DRIFTLINE_PROMETHEUS_URL" not in env  # none by default


def test_values_become_the_operators_settings(rendered: Any):
    objects = rendered(
        "serving.image.repository=registry.test/serve",
        "serving.image.tag=9.9",
        "serving.clusterDomain=corp.internal",
        "operator.workers=4",
        "operator.resyncSeconds=120",
        "prometheus.url=http://prometheus.monitoring:9090",
        "operator.verbose=true",
    )
    env = environment(objects)
    render_settings = RenderSettings.from_environment(env)
    assert render_settings.serving_image == "registry.test/serve:9.9"
    assert render_settings.cluster_domain == "corp.internal"
    operator_settings = OperatorSettings.from_environment(env)
    assert (operator_settings.workers, operator_settings.resync_seconds) == (4, 120.0)
    assert env["DRIFTLINE_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert operator_args(objects).verbose is True


def test_the_values_schema_is_draft_07_and_closed_everywhere():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = [
        where
        for where, schema in walk_schema(SCHEMA)
        if "properties" in schema and schema.get("additionalProperties") is not False
    ]
    assert open_objects == []
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    for path in CI_VALUES:
        jsonschema.Draft7Validator(SCHEMA).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("operator.replica=2", "replica"),  # a typo of replicas
        ("monitoring.podMonitor.enabled=true", "podMonitor"),
        ("watchNamespace={a}", "watchNamespace"),
        ("operator.replicas=0", "/operator/replicas"),
        ("operator.image.pullPolicy=Sometimes", "/operator/image/pullPolicy"),
        ("prometheus.url=prometheus:9090", "/prometheus/url"),
    ],
)
def test_a_typo_in_values_fails_against_the_schema(assignment: str, complaint: str, home: Path):
    done = run_helm(template_args(sets=[assignment]), home)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert complaint in done.stderr


def test_a_typo_in_a_values_file_fails_at_install_time_too(home: Path, tmp_path: Path):
    typo = tmp_path / "typo-values.yaml"
    typo.write_text("operator:\n  replicas: 2\n  peeringNmae: ha\n")
    done = run_helm(template_args(values=[typo]), home)
    assert done.returncode != 0 and "peeringNmae" in done.stderr


def test_monitoring_is_off_by_default(rendered: Any):
    kinds = {obj["kind"] for obj in rendered()}
    assert kinds == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    }


def serving_pod_template() -> dict[str, Any]:
    """A serving Deployment's pod as the operator renders it (example with a DriftPolicy)."""
    from driftline.api.driftpolicy import DriftPolicy
    from driftline.api.modeldeployment import ModelDeployment
    from driftline.api.modelversion import ModelVersion
    from tests.render.conftest import EXAMPLES, load_all, with_uid

    body = with_uid(load_all(EXAMPLES / "cpu-canary" / "modeldeployment.yaml")[0])
    version = ModelVersion.model_validate(
        with_uid(load_all(EXAMPLES / "cpu-canary" / "modelversions.yaml")[1])
    )
    policy = DriftPolicy.model_validate(
        with_uid(load_all(EXAMPLES / "drift-retrain" / "driftpolicy.yaml")[0])
    )
    deployment = render_deployment(
        body,
        ModelDeployment.model_validate(body).spec,
        track="canary",
        model_version=version,
        replicas=1,
        policy=policy,
        settings=RenderSettings(),
    )
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def test_the_serving_pod_monitor_selects_the_serving_pods_the_operator_renders(rendered: Any):
    objects = rendered(values="monitoring-values.yaml")
    monitor = one(objects, "PodMonitor", "driftline-serving")
    template = serving_pod_template()
    labels = template["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert {e["port"] for e in endpoints} == {"http", "evaluator"} <= ports
    # `deployment` and `track` come from the pod labels the renderer sets
    for endpoint in endpoints:
        sources = {r["targetLabel"]: r["sourceLabels"][0] for r in endpoint["relabelings"]}
        assert sources["deployment"] == "__meta_kubernetes_pod_label_" + sanitised(lbl.INSTANCE)
        assert sources["track"] == "__meta_kubernetes_pod_label_" + sanitised(lbl.TRACK)
        assert labels[lbl.INSTANCE] == "churn" and lbl.TRACK in labels
    operator_monitor = one(objects, "PodMonitor", "driftline-operator")
    pod_labels = operator_deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert operator_monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert operator_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def sanitised(label: str) -> str:
    """A pod label as Prometheus' Kubernetes discovery names it."""
    return "".join(c if c.isalnum() else "_" for c in label)


def test_a_namespaced_serving_pod_monitor_looks_only_in_the_watched_namespaces(rendered: Any):
    objects = rendered("monitoring.podMonitors.enabled=true", values="namespaced-values.yaml")
    monitor = one(objects, "PodMonitor", "driftline-serving")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml-team", "vision"]}


def test_the_rule_thresholds_come_from_the_values(rendered: Any):
    rule = one(rendered(values="monitoring-values.yaml"), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts["DriftlineServingErrorRate"]["expr"].rstrip().endswith("> 0.02")
    assert alerts["DriftlineServingLatencyHigh"]["expr"].rstrip().endswith("> 0.25")
    assert all(alert.get("for") for alert in alerts.values())
    assert "__" not in json.dumps(rule)  # every placeholder was filled


def test_the_adapter_rules_serve_the_metric_the_hpa_scales_on(rendered: Any):
    config_map = one(
        rendered(values="monitoring-values.yaml"), "ConfigMap", "driftline-prometheus-adapter"
    )
    rules = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    assert [rule["name"]["as"] for rule in rules] == [INFLIGHT_METRIC]
    assert rules[0]["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }


def test_the_dashboard_config_map_carries_the_dashboard_for_the_sidecar(rendered: Any):
    config_map = one(rendered(values="monitoring-values.yaml"), "ConfigMap", "driftline-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["driftline.json"])
    titles = " | ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("requests", "error", "latency", "canary", "drift score", "reconciles"):
        assert topic in titles
    assert all(panel["targets"] for panel in dashboard["panels"])


def test_install_yaml_is_the_chart_rendered_with_its_defaults():
    require_helm()
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "render_install.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    documents = [d for d in yaml.safe_load_all((ROOT / "deploy" / "install.yaml").read_text()) if d]
    assert documents[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "driftline-system",
            "labels": {
                "app.kubernetes.io/part-of": "driftline",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    for document in documents:
        validate(document)


def test_a_stale_install_yaml_is_reported(tmp_path: Path):
    require_helm()
    stale = tmp_path / "install.yaml"
    stale.write_text(
        (ROOT / "deploy" / "install.yaml").read_text().replace("replicas: 1", "replicas: 3")
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "render_install.py"),
            "--check",
            "--output",
            str(stale),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "out of date" in done.stderr and "-  replicas: 3" in done.stderr
