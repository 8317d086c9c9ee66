"""The committed CRDs are exactly what the models generate, and are well-formed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from driftline.api.cel import compile_rule
from driftline.api.crdgen import all_crds, render_yaml
from driftline.cli.crds import stale_files

REPO = Path(__file__).resolve().parents[2]
CRDS = all_crds()


def walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}[*]")


def schema_of(name: str) -> dict[str, Any]:
    return CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("name", sorted(CRDS))
def test_committed_crd_equals_generated(name: str) -> None:
    committed = (REPO / "crds" / name).read_text()
    assert committed == render_yaml(CRDS[name]), f"crds/{name} is stale: run `driftline crds`"


def test_stale_detection_notices_an_edit(tmp_path: Path) -> None:
    for name, document in CRDS.items():
        (tmp_path / name).write_text(render_yaml(document))
    assert stale_files(tmp_path) == []
    first = sorted(CRDS)[0]
    (tmp_path / first).write_text(render_yaml(CRDS[first]).replace("Generated", "Edited"))
    assert stale_files(tmp_path) == [first]


def test_no_stray_files_in_crds_dir() -> None:
    assert sorted(p.name for p in (REPO / "crds").glob("*.yaml")) == sorted(CRDS)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crd_is_a_valid_kubernetes_object(name: str) -> None:
    document = yaml.safe_load(render_yaml(CRDS[name]))
    kubernetes_validate.validate(document, "1.31", strict=True)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name: str) -> None:
    for path, node in walk(schema_of(name)):
        assert "$ref" not in node and "anyOf" not in node and "allOf" not in node, path
        assert node.get("additionalProperties", {}) not in (True, False), path
        assert not (
            node.get("properties") and isinstance(node.get("additionalProperties"), dict)
        ), path
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") in (
                "object",
                "array",
                "string",
                "integer",
                "number",
                "boolean",
            ), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_field_is_documented(name: str) -> None:
    spec_and_status = {k: schema_of(name)["properties"][k] for k in ("spec", "status")}
    for root, schema in spec_and_status.items():
        for path, node in walk(schema, root):
            if path.endswith("[]") or path.endswith("[*]"):
                continue  # items and map values are described by their field
            assert node.get("description"), f"{path} has no description"


def test_names_categories_columns_and_subresources() -> None:
    by_kind = {d["spec"]["names"]["kind"]: d["spec"] for d in CRDS.values()}
    assert {k: s["names"]["shortNames"] for k, s in by_kind.items()} == {
        "ModelVersion": ["mv"],
        "ModelDeployment": ["mdep"],
        "DriftPolicy": ["dp"],
    }
    for spec in by_kind.values():
        assert spec["group"] == "driftline.io"
        assert spec["names"]["categories"] == ["driftline"]
        version = spec["versions"][0]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert "status" in version["subresources"]
        columns = {c["name"] for c in version["additionalPrinterColumns"]}
        assert {"Age", "Ready"} <= columns
    assert {"Version", "Phase"} <= {
        c["name"] for c in by_kind["ModelVersion"]["versions"][0]["additionalPrinterColumns"]
    }
    assert {"Weight", "Step", "Phase", "Stable", "Canary", "Version"} <= {
        c["name"] for c in by_kind["ModelDeployment"]["versions"][0]["additionalPrinterColumns"]
    }
    assert {"Drift", "Severity"} <= {
        c["name"] for c in by_kind["DriftPolicy"]["versions"][0]["additionalPrinterColumns"]
    }
    assert by_kind["ModelDeployment"]["versions"][0]["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def all_rules() -> list[tuple[str, str]]:
    return [
        (name, rule["rule"])
        for name in sorted(CRDS)
        for _, node in walk(schema_of(name))
        for rule in node.get("x-kubernetes-validations", [])
    ]


@pytest.mark.parametrize(("crd", "rule"), all_rules())
def test_every_rule_compiles_and_has_a_message(crd: str, rule: str) -> None:
    assert compile_rule(rule) is not None


def test_status_has_no_defaults() -> None:
    for name in CRDS:
        for path, node in walk(schema_of(name)["properties"]["status"], "status"):
            assert "default" not in node, path


def test_documented_defaults() -> None:
    md = schema_of("modeldeployments.driftline.io.yaml")["properties"]["spec"]["properties"]
    strategy = md["strategy"]["properties"]
    assert [s["weight"] for s in strategy["canary"]["properties"]["steps"]["default"]] == [
        10,
        50,
        100,
    ]
    assert strategy["blueGreen"]["properties"]["scaleDownDelaySeconds"]["default"] == 30
    dp = schema_of("driftpolicies.driftline.io.yaml")["properties"]["spec"]["properties"]
    assert dp["window"]["default"] == {
        "size": 1000,
        "minSamples": 100,
        "intervalSeconds": 60,
    }
    assert dp["significance"]["default"] == 0.05
    assert dp["correction"]["default"] in ("Bonferroni", "BenjaminiHochberg")
    assert dp["thresholds"]["default"]["psi"] == 0.2
    assert dp["thresholds"]["default"]["jensenShannon"] == 0.1
