"""Unit tests of the structural-schema validator and the CEL bridge."""

from __future__ import annotations

import pytest

from driftline.api.cel import CelRuleError, compile_rule, evaluate_rule, uses_old_self
from driftline.api.validation import invalid_status, prepare_custom_object
from tests.conftest import REPO_ROOT

SCHEMA = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "default": 0.5},
                "count": {"type": "integer", "default": 3},
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {"depth": {"type": "integer", "default": 7}},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "items": {
                    "type": "array",
                    "maxItems": 2,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["key"],
                    "items": {
                        "type": "object",
                        "properties": {"key": {"type": "string"}, "value": {"type": "integer"}},
                        "x-kubernetes-validations": [
                            {
                                "rule": "self.value >= oldSelf.value",
                                "message": "value may only grow",
                            }
                        ],
                    },
                },
                "optional": {"type": "string", "nullable": True},
            },
            "x-kubernetes-validations": [
                {"rule": "self.ratio <= 1.0", "message": "ratio at most 1"},
                {"rule": "self.missing == 1"},
            ],
        },
    },
}


def obj(**spec):
    return {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "a"},
        "spec": {"name": "n", **spec},
    }


def messages(errors):
    return [str(e) for e in errors]


def test_prunes_unknown_fields_but_keeps_preserved_and_root_fields() -> None:
    new, _ = prepare_custom_object(SCHEMA, obj(unknown=1, free={"any": {"thing": 1}}))
    assert "unknown" not in new["spec"]
    assert new["spec"]["free"] == {"any": {"thing": 1}}
    assert new["metadata"] == {"name": "a"} and new["kind"] == "X"


def test_defaults_are_applied_recursively_and_nulls_dropped_first() -> None:
    new, _ = prepare_custom_object(SCHEMA, obj(count=None, optional=None))
    assert new["spec"]["ratio"] == 0.5
    assert new["spec"]["count"] == 3, "a null for a non-nullable field is dropped, then defaulted"
    assert new["spec"]["nested"] == {"depth": 7}
    assert new["spec"]["optional"] is None, "nullable fields keep their null"


def test_schema_errors_have_api_server_wording() -> None:
    _, errors = prepare_custom_object(
        SCHEMA, obj(name="toolong", count="three", ratio=0, labels={"a": 1}, items=[{}, {}, {}])
    )
    assert set(messages(errors)) >= {
        "spec.name: Too long: may not be more than 5 bytes",
        'spec.count: Invalid value: "three": spec.count in body must be of type integer: "string"',
        "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
        'spec.labels[a]: Invalid value: 1: spec.labels[a] in body must be of type string: "integer"',
        "spec.items: Too many: 3: must have at most 2 items",
        'spec.items[1]: Duplicate value: {"key":null}',
    }


def test_required_field() -> None:
    document = obj()
    del document["spec"]["name"]
    _, errors = prepare_custom_object(SCHEMA, document)
    assert "spec.name: Required value" in messages(errors)


def test_rule_that_fails_to_evaluate_is_reported_not_raised() -> None:
    _, errors = prepare_custom_object(SCHEMA, obj())
    assert any(
        e.path == "spec"
        and "no such key" in e.message
        and "evaluating rule: self.missing == 1" in e.message
        for e in errors
    )


def test_integer_given_for_number_compares_as_double_in_cel() -> None:
    _, errors = prepare_custom_object(SCHEMA, obj(ratio=1))
    assert not any("ratio at most 1" in e.message for e in errors)
    _, errors = prepare_custom_object(SCHEMA, obj(ratio=2))
    assert 'spec: Invalid value: "object": ratio at most 1' in messages(errors)


def test_transition_rules_correlate_list_map_items_by_key() -> None:
    old, _ = prepare_custom_object(SCHEMA, obj(items=[{"key": "a", "value": 5}]))
    _, errors = prepare_custom_object(
        SCHEMA, obj(items=[{"key": "b", "value": 1}, {"key": "a", "value": 4}]), old
    )
    assert 'spec.items[1]: Invalid value: "object": value may only grow' in messages(errors)
    assert not any(e.path == "spec.items[0]" for e in errors), "new items have no oldSelf"


def test_transition_rules_skip_creates() -> None:
    _, errors = prepare_custom_object(SCHEMA, obj(items=[{"key": "a", "value": 1}]))
    assert not any("may only grow" in e.message for e in errors)


def test_invalid_status_body() -> None:
    _, errors = prepare_custom_object(SCHEMA, obj(count="x", ratio=5))
    body = invalid_status("X", "example.io", "a", errors)
    assert body["code"] == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('X.example.io "a" is invalid: [')
    assert {"field": "spec.count", "reason": "FieldValueTypeInvalid"}.items() <= body["details"][
        "causes"
    ][0].items()


def test_kubernetes_list_library_functions() -> None:
    assert evaluate_rule("self.isSorted()", [1, 2, 2, 5])
    assert not evaluate_rule("self.isSorted()", [3, 1])
    assert evaluate_rule("self.indexOf(3) == 1 && self.lastIndexOf(4) == -1", [1, 3, 3])
    assert evaluate_rule("self.sum() == 6", [1, 2, 3])


def test_cel_errors() -> None:
    with pytest.raises(CelRuleError, match="compilation failed"):
        compile_rule("self.(")
    with pytest.raises(CelRuleError, match="not bool"):
        evaluate_rule("self + 1", 1)
    assert uses_old_self("self == oldSelf") and not uses_old_self("self == 1")


# --- unknown fields, and `driftline validate` -------------------------------------------


def test_unknown_fields_are_named_by_path() -> None:
    from driftline.api.validation import unknown_fields

    document = obj(
        stratgey="x",
        labels={"any": "key"},
        free={"anything": {"goes": 1}},
        items=[{"key": "a", "valu": 1}],
        nested={"dept": 1},
    )
    document["extra"] = 1
    assert unknown_fields(SCHEMA, document) == [
        "spec.stratgey",
        "spec.items[0].valu",
        "spec.nested.dept",
        "extra",
    ]
    assert unknown_fields(SCHEMA, obj()) == []


def test_unknown_fields_follow_references_and_keep_free_form_builtin_objects_open() -> None:
    from driftline.api.validation import unknown_fields

    definitions = {
        "Meta": {"type": "object", "properties": {"name": {"type": "string"}}},
        "Raw": {"type": "object"},  # free-form, as RawExtension or FieldsV1
    }
    schema = {
        "type": "object",
        "properties": {
            "metadata": {"allOf": [{"$ref": "#/definitions/Meta"}]},
            "raw": {"$ref": "#/definitions/Raw"},
            "closed": {"type": "object"},  # in a CRD's structural schema: no fields at all
        },
    }
    value = {"metadata": {"name": "a", "nam": "b"}, "raw": {"x": 1}, "closed": {"y": 2}}
    assert unknown_fields(schema, value, definitions) == ["metadata.nam", "closed.y"]


def _validate(*paths: str):
    from click.testing import CliRunner

    from driftline.cli.validate import validate

    return CliRunner().invoke(validate, list(paths))


EXAMPLE_DEPLOYMENT = REPO_ROOT / "examples" / "cpu-canary" / "modeldeployment.yaml"


def test_validate_reports_misspelled_fields_with_their_path(tmp_path) -> None:
    text = EXAMPLE_DEPLOYMENT.read_text()
    assert "  strategy:" in text and "maxBatchSize:" in text
    misspelled = tmp_path / "md.yaml"
    misspelled.write_text(
        text.replace("  strategy:", "  stratgey:", 1).replace("maxBatchSize:", "maxBatchDelay:", 1)
    )
    result = _validate(str(misspelled))
    assert result.exit_code == 1, result.output
    assert "spec.stratgey: field not declared in schema" in result.output
    assert "maxBatchDelay: field not declared in schema" in result.output
    assert _validate(str(EXAMPLE_DEPLOYMENT)).exit_code == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# Title\n\nSome *markdown*: with: colons\n", "not valid YAML: "),
        ("- a\n- b\n", "document 1 is a YAML list, not a Kubernetes object"),
        ("", "holds no Kubernetes objects (the file is empty)"),
        ("just a sentence\n", "document 1 is a YAML string, not a Kubernetes object"),
    ],
)
def test_validate_explains_a_file_that_holds_no_objects(tmp_path, content, message) -> None:
    path = tmp_path / "input.yaml"
    path.write_text(content)
    result = _validate(str(path))
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"INVALID {path}: {message}" in result.output
    assert "Traceback" not in result.output


def test_validate_readme_is_a_message_not_a_traceback() -> None:
    result = _validate(str(REPO_ROOT / "README.md"))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "README.md: " in result.output and "not" in result.output


def test_validate_a_missing_file_is_a_usage_error(tmp_path) -> None:
    result = _validate(str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_validate_skips_other_kinds_beside_driftline_objects(tmp_path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n---\n"
        + EXAMPLE_DEPLOYMENT.read_text()
    )
    result = _validate(str(path))
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "Namespace/ml" in result.output


def test_unknown_fields_can_be_removed_in_place() -> None:
    from driftline.api.validation import unknown_fields

    document = obj(stratgey="x", items=[{"key": "a", "valu": 1, "value": 2}])
    assert unknown_fields(SCHEMA, document, remove=True) == ["spec.stratgey", "spec.items[0].valu"]
    assert document["spec"] == {"name": "n", "items": [{"key": "a", "value": 2}]}
    assert unknown_fields(SCHEMA, document) == []
