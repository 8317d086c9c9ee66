"""Reading Kubernetes protobuf bodies: the wire format, the envelope, Go's omitempty."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest
from conftest import WIDGET_GROUP, http

from driftline.apiserver import protobuf
from driftline.apiserver.resources import BUILTIN_RESOURCES


# A minimal encoder, for bodies as client-go writes them (every non-pointer field, zeros too).
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(key: str, value: bytes | str) -> bytes:
    return field(1, key) + field(2, value)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    unknown = field(1, type_meta) + field(2, raw) + field(3, "") + field(4, "")
    return protobuf.MAGIC + unknown


def object_meta(name: str, **labels: str) -> bytes:
    meta = field(1, name) + field(2, "") + field(3, "") + field(7, 0)
    meta += field(8, b"")  # a zero creationTimestamp, as the Go struct always writes it
    for key, value in labels.items():
        meta += field(11, entry(key, value))
    return meta


def test_a_configmap_with_binary_data_and_labels():
    raw = (
        field(1, object_meta("cm", app="x"))
        + field(2, entry("a", "1"))
        + field(3, entry("blob", b"\x00\xff"))
        + field(4, 0)  # immutable is a pointer: an explicit false is kept
    )
    assert protobuf.decode_object(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"app": "x"}},
        "data": {"a": "1"},
        "binaryData": {"blob": base64.b64encode(b"\x00\xff").decode()},
        "immutable": False,
    }


def test_a_deployment_keeps_pointer_zeros_and_drops_omitempty_zeros():
    port = field(1, "") + field(2, 0) + field(3, 80) + field(4, "TCP") + field(5, "")
    limits = field(1, entry("cpu", field(1, "500m")))
    container = field(1, "web") + field(2, "web:1") + field(6, port) + field(8, limits)
    pod_spec = field(2, container) + field(4, -5 & ((1 << 64) - 1))
    template = field(1, object_meta("")) + field(2, pod_spec)
    rolling = field(1, field(1, 1) + field(3, "25%")) + field(2, field(1, 0) + field(2, 1))
    strategy = field(1, "RollingUpdate") + field(2, rolling)
    spec = field(1, 0) + field(3, template) + field(4, strategy) + field(5, 0)
    raw = field(1, object_meta("web")) + field(2, spec) + field(3, b"")
    decoded = protobuf.decode_object(envelope("apps/v1", "Deployment", raw))
    assert decoded["spec"]["replicas"] == 0  # a pointer: kept
    assert "minReadySeconds" not in decoded["spec"]  # omitempty: dropped
    assert decoded["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1},
    }
    pod = decoded["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == -5  # int64 in two's complement
    assert pod["containers"] == [
        {
            "name": "web",
            "image": "web:1",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m"}},
        }
    ]
    assert decoded["status"] == {}
    assert "creationTimestamp" not in decoded["metadata"]


def test_times_are_rfc3339():
    meta = field(1, "e") + field(8, field(1, 1_764_590_400))
    raw = field(1, meta)
    decoded = protobuf.decode_object(envelope("v1", "Namespace", raw))
    assert decoded["metadata"]["creationTimestamp"] == "2025-12-01T12:00:00Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "does not start with the Kubernetes protobuf prefix"),
        (protobuf.MAGIC + field(1, field(1, "v1")), "names no apiVersion and kind"),
        (envelope("v1", "Nothing", b""), "v1 Nothing has no protobuf form"),
        (envelope("v1", "ConfigMap", field(99, "x")), "field 99 of k8s.io.api.core.v1.ConfigMap"),
        (envelope("v1", "ConfigMap", b"\x0a\xff"), "truncated varint"),
        (envelope("v1", "ConfigMap", b"\x0a\x05ab"), "runs past the end"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(body, message):
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.decode_object(body)


def test_every_served_built_in_kind_has_a_message_and_every_reference_resolves():
    table = protobuf.message_table()
    for resource in BUILTIN_RESOURCES:
        if resource.group != "apiextensions.k8s.io":
            assert protobuf.message_for(resource.api_version, resource.kind) in table
    specials = set(protobuf._SPECIAL)
    for fields in table.values():
        for _, label, kind, _ in fields.values():
            for item in kind if label == "map" else [kind]:
                assert "." not in item or item in table or item in specials, item


def _post(server, path: str, body: bytes, content_type: str, accept: str = "application/json"):
    request = urllib.request.Request(
        server.url + path,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Accept": accept},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_server_creates_from_protobuf_and_answers_json(server):
    body = envelope("v1", "ConfigMap", field(1, object_meta("cm")) + field(2, entry("a", "1")))
    code, answer = _post(
        server,
        "/api/v1/namespaces/default/configmaps",
        body,
        protobuf.MEDIA_TYPE,
        accept=f"{protobuf.MEDIA_TYPE},application/json",
    )
    assert code == 201, answer
    assert http(server, "GET", "/api/v1/namespaces/default/configmaps/cm")[1]["data"] == {"a": "1"}


def test_a_protobuf_only_accept_gets_406(server):
    code, answer = _post(
        server,
        "/api/v1/namespaces/default/configmaps",
        b"{}",
        "application/json",
        protobuf.MEDIA_TYPE,
    )
    assert code == 406 and b"NotAcceptable" in answer


def test_custom_resources_refuse_protobuf_with_415(server, widgets):
    code, answer = _post(
        server,
        f"/apis/{WIDGET_GROUP}/v1/namespaces/default/widgets",
        protobuf.MAGIC,
        protobuf.MEDIA_TYPE,
    )
    assert code == 415 and b"application/json, application/yaml" in answer


def test_delete_options_decode_from_meta_v1_whatever_group_version_the_envelope_names():
    preconditions = field(1, "uid-1")
    raw = field(1, 0) + field(2, preconditions) + field(4, "Background") + field(5, "All")
    for api_version in ("v1", "apps/v1"):
        assert protobuf.decode_object(envelope(api_version, "DeleteOptions", raw)) == {
            "apiVersion": api_version,
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,  # a pointer: an explicit zero means "now"
            "preconditions": {"uid": "uid-1"},
            "propagationPolicy": "Background",
            "dryRun": ["All"],
        }


def test_the_server_deletes_with_a_protobuf_delete_options_body_as_helm_uninstall_sends(server):
    # helm uninstall removes its release Secret this way
    created = envelope("v1", "ConfigMap", field(1, object_meta("cm")))
    code, _ = _post(server, "/api/v1/namespaces/default/configmaps", created, protobuf.MEDIA_TYPE)
    assert code == 201
    uid = http(server, "GET", "/api/v1/namespaces/default/configmaps/cm")[1]["metadata"]["uid"]

    def delete(precondition_uid: str) -> int:
        options = field(2, field(1, precondition_uid)) + field(4, "Background")
        request = urllib.request.Request(
            server.url + "/api/v1/namespaces/default/configmaps/cm",
            data=envelope("v1", "DeleteOptions", options),
            method="DELETE",
            headers={"Content-Type": protobuf.MEDIA_TYPE, "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert delete("another-uid") == 409  # the options were read: the precondition holds
    assert delete(uid) == 200
    assert http(server, "GET", "/api/v1/namespaces/default/configmaps/cm")[0] == 404
