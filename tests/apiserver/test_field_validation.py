"""Field validation as kube-apiserver does it: fieldValidation=Strict, Warn (the default) or Ignore."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml
from conftest import WIDGET_GROUP, http, widget

WIDGETS = f"/apis/{WIDGET_GROUP}/v1/namespaces/default/widgets"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def request(
    server: Any,
    method: str,
    path: str,
    body: Any,
    content_type: str = "application/json",
    **query: str,
) -> tuple[int, Any, list[str]]:
    """A request that also returns the Warning headers."""
    url = server.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return (
                response.status,
                json.loads(response.read()),
                response.headers.get_all("Warning") or [],
            )
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get_all("Warning") or []


def misspelled_widget(name: str) -> dict[str, Any]:
    body = widget(name)
    body["spec"]["colr"] = "red"
    body["spec"]["tags"] = ["a"]
    return body


def test_strict_refuses_an_unknown_field_naming_its_path(server, widgets):
    code, status, _ = request(
        server, "POST", WIDGETS, misspelled_widget("w"), fieldValidation="Strict"
    )
    assert code == 400
    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: '
        'strict decoding error: unknown field "spec.colr"'
    )
    assert http(server, "GET", f"{WIDGETS}/w")[0] == 404  # nothing was stored


def test_warn_is_the_default_and_drops_the_field_with_a_299_warning(server, widgets):
    code, created, warnings = request(server, "POST", WIDGETS, misspelled_widget("w"))
    assert code == 201
    assert warnings == ['299 - "unknown field \\"spec.colr\\""']
    assert "colr" not in created["spec"]  # pruned, as the CRD does not preserve unknown fields


def test_ignore_drops_the_field_silently(server, widgets):
    code, created, warnings = request(
        server, "POST", WIDGETS, misspelled_widget("w"), fieldValidation="Ignore"
    )
    assert code == 201 and warnings == [] and "colr" not in created["spec"]


def test_update_and_patches_are_validated_too(server, widgets):
    code, created, _ = request(server, "POST", WIDGETS, widget("w"))
    assert code == 201
    replaced = {**created, "spec": {**created["spec"], "colr": "red"}}
    code, status, _ = request(server, "PUT", f"{WIDGETS}/w", replaced, fieldValidation="Strict")
    assert code == 400 and 'unknown field "spec.colr"' in status["message"]
    code, status, _ = request(
        server,
        "PATCH",
        f"{WIDGETS}/w",
        {"spec": {"sise": 2}},
        "application/merge-patch+json",
        fieldValidation="Strict",
    )
    assert code == 400 and 'unknown field "spec.sise"' in status["message"]
    code, status, _ = request(
        server,
        "PATCH",
        f"{WIDGETS}/w",
        [{"op": "add", "path": "/spec/sise", "value": 2}],
        "application/json-patch+json",
        fieldValidation="Strict",
    )
    assert code == 400 and 'unknown field "spec.sise"' in status["message"]
    applied = yaml.safe_dump({**widget("w"), "spec": {"size": 2, "sise": 2}}).encode()
    code, status, _ = request(
        server,
        "PATCH",
        f"{WIDGETS}/w",
        applied,
        "application/apply-patch+yaml",
        fieldValidation="Strict",
        fieldManager="test",
    )
    assert code == 400
    assert status["message"] == (
        "failed to create typed patch object (test.driftline.io/v1, Kind=Widget): "
        ".spec.sise: field not declared in schema"
    )
    code, patched, warnings = request(
        server, "PATCH", f"{WIDGETS}/w", {"spec": {"sise": 2}}, "application/merge-patch+json"
    )
    assert "sise" not in patched["spec"]
    assert code == 200 and warnings == ['299 - "unknown field \\"spec.sise\\""']


def test_built_in_kinds_are_checked_against_kubernetes_schemas(server):
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labls": {}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1", "imagee": "x"}]},
            },
        },
    }
    code, status, _ = request(server, "POST", DEPLOYMENTS, deployment, fieldValidation="Strict")
    assert code == 400
    assert status["message"].endswith(
        'strict decoding error: unknown field "metadata.labls", '
        'unknown field "spec.template.spec.containers[0].imagee"'
    )
    del (
        deployment["metadata"]["labls"],
        deployment["spec"]["template"]["spec"]["containers"][0]["imagee"],
    )
    code, _, warnings = request(server, "POST", DEPLOYMENTS, deployment, fieldValidation="Strict")
    assert code == 201 and warnings == []


@pytest.mark.parametrize("value", ["strict", "Error", "1"])
def test_an_unknown_directive_is_refused(server, value):
    code, status, _ = request(
        server,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "c"}},
        fieldValidation=value,
    )
    assert code == 400 and "fieldValidation" in status["message"]


@pytest.mark.parametrize(("directive", "warned"), [("Warn", True), ("Ignore", False)])
def test_built_in_kinds_drop_undeclared_fields_as_go_decoding_does(server, directive, warned):
    configmap = {"metadata": {"name": "c", "labls": {"a": "b"}}, "data": {"a": "1"}, "dta": {}}
    code, created, warnings = request(
        server,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        configmap,
        fieldValidation=directive,
    )
    assert code == 201
    assert "dta" not in created and "labls" not in created["metadata"]
    assert created["data"] == {"a": "1"}
    expected = ['299 - "unknown field \\"dta\\""', '299 - "unknown field \\"metadata.labls\\""']
    assert sorted(warnings) == (expected if warned else [])
    code, stored = http(server, "GET", "/api/v1/namespaces/default/configmaps/c")
    assert code == 200 and "dta" not in stored
