"""The OpenAPI documents: what kubectl reads from /openapi/v2 and /openapi/v3."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import pytest
from conftest import http

from driftline.apiserver import builtin_schemas, openapi
from driftline.apiserver.resources import Registry

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _get(server, path: str, accept: str) -> tuple[int, bytes, str]:
    request = urllib.request.Request(server.url + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def test_v2_is_json_and_refuses_a_protobuf_only_accept_with_406(server):
    code, body, content_type = _get(server, "/openapi/v2", "application/json")
    assert code == 200 and content_type.startswith("application/json")
    document = json.loads(body)
    assert document["swagger"] == "2.0"
    assert "io.k8s.api.apps.v1.Deployment" in document["definitions"]
    code, body, _ = _get(server, "/openapi/v2", PROTOBUF_V2)
    assert code == 406
    assert json.loads(body)["reason"] == "NotAcceptable"
    code, _, _ = _get(server, "/openapi/v2", f"{PROTOBUF_V2}, application/json")
    assert code == 200


def test_v3_index_points_at_each_group_version(server, widgets):
    code, index = http(server, "GET", "/openapi/v3")
    assert code == 200
    assert {"api/v1", "apis/apps/v1", "apis/test.driftline.io/v1"} <= set(index["paths"])
    url = index["paths"]["apis/test.driftline.io/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/test.driftline.io/v1?hash=")
    code, document = http(server, "GET", url)
    assert code == 200 and document["openapi"].startswith("3.0")
    schema = document["components"]["schemas"]["io.driftline.test.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "test.driftline.io", "version": "v1", "kind": "Widget"}
    ]
    assert schema["properties"]["spec"]["properties"]["size"]["maximum"] == 10
    assert schema["properties"]["metadata"]["$ref"] == (
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in document["components"]["schemas"]
    code, _ = http(server, "GET", "/openapi/v3/apis/nothing.example.com/v1")
    assert code == 404


def test_v3_patch_operations_take_field_validation_as_kubectl_checks():
    registry = Registry()
    document = openapi.v3_document(registry, "apps", "v1")
    assert document is not None
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation"
    ).items()
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    text = json.dumps(document)
    assert "#/definitions/" not in text  # every reference resolves within components


def test_custom_kinds_offer_no_strategic_merge_patch(server, widgets):
    code, document = http(server, "GET", "/openapi/v3/apis/test.driftline.io/v1")
    assert code == 200
    patch = document["paths"]["/apis/test.driftline.io/v1/namespaces/{namespace}/widgets/{name}"][
        "patch"
    ]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "application/merge-patch+json" in patch["requestBody"]["content"]


def test_the_stored_builtin_definitions_are_current():
    pytest.importorskip("kubernetes_validate")
    expected = builtin_schemas.generate(builtin_schemas.kubernetes_validate_definitions())
    with gzip.open(builtin_schemas.DEFINITIONS_FILE, "rt") as handle:
        stored = json.load(handle)
    assert stored == expected, "run: python -m driftline.apiserver.builtin_schemas"


def test_every_reference_in_the_builtin_definitions_resolves():
    definitions = builtin_schemas.builtin_definitions()
    text = json.dumps(definitions)
    for name in set(builtin_schemas._REF.findall(text)):
        assert name in definitions, name
