"""Examples are valid and round-trip; every invalid manifest is rejected for its reason;
every CEL rule is seen both holding and failing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from driftline.api.crdgen import all_crds
from driftline.api.manifests import check_manifest, load_documents, parse, rejection, schema_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))
INVALID = sorted((REPO / "tests" / "manifests" / "invalid").glob("*.yaml"))


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.relative_to(REPO)}:{doc['metadata']['name']}", doc)
        for path in EXAMPLES
        for doc in load_documents(path)
        if doc["apiVersion"].startswith("driftline.io/")  # not the examples' Namespaces
    ]


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def test_examples_cover_every_kind_and_both_strategies() -> None:
    documents = [doc for _, doc in example_documents()]
    assert {d["kind"] for d in documents} == {"ModelVersion", "ModelDeployment", "DriftPolicy"}
    deployments = [d for d in documents if d["kind"] == "ModelDeployment"]
    assert {d["spec"]["strategy"]["type"] for d in deployments} == {"Canary", "BlueGreen"}
    assert any("mig" in d["spec"].get("gpu", {}).get("resourceName", "") for d in deployments)
    policy = next(d for d in documents if d["kind"] == "DriftPolicy")
    assert {(a["severity"], a["action"]) for a in policy["spec"]["actions"]} >= {
        ("High", "Rollback"),
        ("Medium", "Retrain"),
    }


@pytest.mark.parametrize(("label", "document"), example_documents())
def test_example_is_accepted(label: str, document: dict[str, Any]) -> None:
    _stored, errors = check_manifest(document)
    assert errors == [], rejection(document, errors)


@pytest.mark.parametrize(("label", "document"), example_documents())
def test_example_matches_openapi_schema_independently(label: str, document: dict[str, Any]) -> None:
    """A second opinion from a general JSON Schema validator (OpenAPI 3.0 is draft 4 here)."""
    jsonschema.Draft4Validator(schema_for(document["kind"])).validate(document)


@pytest.mark.parametrize(("label", "document"), example_documents())
def test_example_round_trips_through_the_models(label: str, document: dict[str, Any]) -> None:
    stored, _ = check_manifest(document)
    model = parse(stored)
    # the API server's defaults (from the CRD) and the models' defaults are the same
    assert model.wire()["spec"] == stored["spec"]
    again, errors = check_manifest(model.wire())
    assert errors == []
    assert again["spec"] == stored["spec"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_for_its_reason(path: Path) -> None:
    (document,) = list(load_documents(path))
    _, errors = check_manifest(document)
    message = rejection(document, errors)
    assert errors, f"{path.name} was accepted"
    assert expected_message(path) in message
    assert message.startswith(f'{document["kind"]}.driftline.io "bad" is invalid: ')


def test_invalid_manifests_change_nothing() -> None:
    """Validation is pure: the caller's document is left as it was."""
    for path in INVALID:
        (document,) = list(load_documents(path))
        before = copy.deepcopy(document)
        check_manifest(document)
        assert document == before


def modelversion_example() -> dict[str, Any]:
    return next(doc for _, doc in example_documents() if doc["kind"] == "ModelVersion")


def test_modelversion_spec_is_immutable() -> None:
    stored, errors = check_manifest(modelversion_example())
    assert errors == []
    _unchanged, errors = check_manifest(copy.deepcopy(stored), old=stored)
    assert errors == []
    changed = copy.deepcopy(stored)
    changed["spec"]["artifact"]["sha256"] = "0" * 64
    _, errors = check_manifest(changed, old=stored)
    assert [str(e) for e in errors] == [
        'spec: Invalid value: "object": spec is immutable; create a new ModelVersion instead'
    ]
    relabelled = copy.deepcopy(stored)
    relabelled["metadata"]["labels"] = {"team": "growth"}
    _, errors = check_manifest(relabelled, old=stored)
    assert errors == [], "metadata stays mutable"


def test_every_cel_rule_is_seen_holding_and_failing() -> None:
    seen: dict[str, set[bool]] = {}

    def observe(rule: str, held: bool) -> None:
        seen.setdefault(rule, set()).add(held)

    for _, document in example_documents():
        stored, _ = check_manifest(document, observer=observe)
        check_manifest(copy.deepcopy(stored), old=stored, observer=observe)
    for path in INVALID:
        (document,) = list(load_documents(path))
        check_manifest(document, observer=observe)
    stored, _ = check_manifest(modelversion_example())
    changed = copy.deepcopy(stored)
    changed["spec"]["version"] = "9.9.9"
    check_manifest(changed, old=stored, observer=observe)

    rules = {
        rule["rule"]
        for crd in all_crds().values()
        for rule in _rules(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    }
    assert rules, "no rules found"
    missing = {
        rule: sorted(seen.get(rule, set())) for rule in rules if seen.get(rule) != {True, False}
    }
    assert missing == {}, f"rules not seen both holding and failing: {missing}"


def _rules(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        found = list(node.get("x-kubernetes-validations", []))
        for value in node.values():
            found += _rules(value)
        return found
    if isinstance(node, list):
        return [r for item in node for r in _rules(item)]
    return []
