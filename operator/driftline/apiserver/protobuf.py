"""Decode the protobuf bodies kubectl sends for built-in kinds (`application/vnd.kubernetes.protobuf`).

kubectl 1.32's typed commands (`kubectl create namespace|deployment|configmap|...`) send
protobuf and give no way to ask for JSON; kube-apiserver decodes it. No maintained Python
package carries Kubernetes' protobuf definitions, so this module does: a small reader of
the protobuf wire format, driven by a table of Kubernetes' messages (field number -> JSON
name and type) that `generate` builds from the `generated.proto` and `types.go` files of
k8s.io/api and k8s.io/apimachinery 1.32, stored gzipped beside this module.

The body is the `k8s\\0` magic and a runtime.Unknown envelope, whose typeMeta names the
kind and whose raw bytes are the object. The result is the object as kube-apiserver would
write it in JSON: Go's `omitempty` drops the zero values the wire carries for non-pointer
fields; times become RFC 3339, quantities and int-or-strings their JSON forms.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import re
import struct
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
TABLE_FILE = Path(__file__).with_name("builtin_protobuf.json.gz")

META = "k8s.io.apimachinery.pkg.apis.meta.v1."
UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
TIME, MICRO_TIME, DURATION = META + "Time", META + "MicroTime", META + "Duration"
FIELDS_V1 = META + "FieldsV1"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
# Option bodies clients send in protobuf: helm's uninstall deletes its release Secrets
# with a protobuf DeleteOptions body.
META_OPTIONS_KINDS = frozenset({"DeleteOptions"})

# A field: [JSON name, "opt" | "rep" | "map", type, keep zero values]; a map's type is
# [key type, value type]. Types are scalars (string, bytes, bool, int32, int64, double,
# float, uint32, uint64) or full message names.
Field = list[Any]
Table = dict[str, dict[str, Field]]


class ProtobufError(ValueError):
    """A body this decoder cannot read, with what was wrong."""


@cache
def message_table() -> Table:
    with gzip.open(TABLE_FILE, "rt", encoding="utf-8") as handle:
        table: Table = json.load(handle)
    return table


def message_for(api_version: str, kind: str) -> str:
    """The protobuf message of a built-in kind: k8s.io.api.<group's first label>.<version>.<Kind>.

    The request options (DeleteOptions) are meta/v1's whatever group version the client
    names in the envelope (client-go sends the resource's, e.g. `v1` for a Secret)."""
    if kind in META_OPTIONS_KINDS:
        return META + kind
    group, _, version = api_version.rpartition("/")
    package = group.split(".")[0] if group else "core"
    return f"k8s.io.api.{package}.{version}.{kind}"


def decode_object(body: bytes, table: Table | None = None) -> dict[str, Any]:
    """A Kubernetes protobuf request body as the JSON object it stands for."""
    table = table if table is not None else message_table()
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix")
    envelope = _decode_message(body[len(MAGIC) :], UNKNOWN, table)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if not api_version or not kind:
        raise ProtobufError("the envelope names no apiVersion and kind")
    if envelope.get("contentEncoding"):
        raise ProtobufError(f"content encoding {envelope['contentEncoding']!r} is not supported")
    message = message_for(api_version, kind)
    if message not in table:
        raise ProtobufError(f"{api_version} {kind} has no protobuf form known to the local API")
    raw = base64.b64decode(envelope.get("raw", ""))
    return {"apiVersion": api_version, "kind": kind, **_decode_message(raw, message, table)}


# --- the wire format --------------------------------------------------------------------


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 64 bits")


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field: an int for a varint, bytes for
    fixed-width and length-delimited values."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 1:
            value, position = data[position : position + 8], position + 8
        elif wire_type == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire_type == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire_type} for field {number}")
        if position > len(data):
            raise ProtobufError(f"field {number} runs past the end of its message")
        yield number, wire_type, value


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return (
        value if bits == 64 else int(struct.unpack("<i", struct.pack("<I", value & 0xFFFFFFFF))[0])
    )


def _scalars(kind: str, wire_type: int, value: Any) -> list[Any]:
    """One field's scalar values (a packed repeated field holds several)."""
    if kind in ("string", "bytes"):
        if wire_type != 2:
            raise ProtobufError(f"a {kind} field with wire type {wire_type}")
        if kind == "bytes":
            return [base64.b64encode(value).decode()]
        try:
            return [value.decode("utf-8")]
        except UnicodeDecodeError as exc:
            raise ProtobufError("a string field is not UTF-8") from exc
    if wire_type == 2:  # packed
        values, position = [], 0
        while position < len(value):
            item, position = _varint(value, position)
            values.extend(_scalars(kind, 0, item))
        return values
    if kind == "double":
        return [struct.unpack("<d", value)[0]]
    if kind == "float":
        return [struct.unpack("<f", value)[0]]
    if kind == "bool":
        return [bool(value)]
    if kind in ("int32", "int64"):
        return [_signed(value, 32 if kind == "int32" else 64)]
    return [value]


def _is_zero(value: Any) -> bool:
    return value in ("", 0, False) and not isinstance(value, dict | list)


def _decode_message(data: bytes, message: str, table: Table) -> Any:
    special = _SPECIAL.get(message)
    if special is not None:
        return special(data, table)
    fields = table.get(message)
    if fields is None:
        raise ProtobufError(f"message {message} is not known to the local API")
    result: dict[str, Any] = {}
    kept_zero: set[str] = set()
    for number, wire_type, value in _fields(data):
        field = fields.get(str(number))
        if field is None:
            raise ProtobufError(f"field {number} of {message} is not known to the local API")
        name, label, kind, keep_zero = field
        if label == "map":
            key, item = _map_entry(value, kind[0], kind[1], table)
            result.setdefault(name, {})[key] = item
        elif label == "rep":
            if "." in kind:
                result.setdefault(name, []).append(_decode_message(value, kind, table))
            else:
                result.setdefault(name, []).extend(_scalars(kind, wire_type, value))
        else:
            decoded = _value(kind, wire_type, value, table)
            if decoded is None:
                continue
            result[name] = decoded
            if keep_zero:
                kept_zero.add(name)
    # Go's omitempty: zero scalars of non-pointer fields are not written.
    return {
        k: v
        for k, v in result.items()
        if k in kept_zero or not _is_zero(v) or isinstance(v, list | dict)
    }


def _map_entry(data: bytes, key_type: str, value_type: str, table: Table) -> tuple[Any, Any]:
    """A map entry's key and value; an absent one is its type's zero value."""
    entry = {number: (wire_type, value) for number, wire_type, value in _fields(data)}
    key, item = (
        _value(kind, *entry.get(number, _zero(kind)), table)
        for number, kind in ((1, key_type), (2, value_type))
    )
    return key, item


def _zero(kind: str) -> tuple[int, Any]:
    """The wire form of an absent field: empty bytes for length-delimited kinds, else 0."""
    return (2, b"") if kind in ("string", "bytes") or "." in kind else (0, 0)


def _value(kind: str, wire_type: int, value: Any, table: Table) -> Any:
    if "." in kind:
        if wire_type != 2:
            raise ProtobufError(f"a {kind} field with wire type {wire_type}")
        return _decode_message(value, kind, table)
    return _scalars(kind, wire_type, value)[0]


def _plain(data: bytes) -> dict[int, Any]:
    return {number: value for number, _, value in _fields(data)}


def _time(data: bytes, table: Table, micro: bool = False) -> str | None:
    values = _plain(data)
    seconds, nanos = _signed(values.get(1, 0), 64), _signed(values.get(2, 0), 32)
    if seconds == 0 and nanos == 0:
        return None  # the zero time: null in JSON, and left out
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(data: bytes, table: Table) -> str:
    nanoseconds = _signed(_plain(data).get(1, 0), 64)
    seconds = nanoseconds / 1e9
    hours, rest = divmod(int(seconds), 3600)
    minutes, whole = divmod(rest, 60)
    fraction = seconds - int(seconds)
    text = f"{whole + fraction:g}s"
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + text


def _quantity(data: bytes, table: Table) -> str:
    return bytes(_plain(data).get(1, b"")).decode("utf-8")


def _int_or_string(data: bytes, table: Table) -> int | str:
    values = _plain(data)
    if values.get(1, 0) == 1:
        return bytes(values.get(3, b"")).decode("utf-8")
    return _signed(values.get(2, 0), 32)


def _raw_json(data: bytes, table: Table) -> Any:
    raw = bytes(_plain(data).get(1, b""))
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ProtobufError("an embedded object is not JSON") from exc


_SPECIAL = {
    TIME: _time,
    MICRO_TIME: lambda data, table: _time(data, table, micro=True),
    DURATION: _duration,
    QUANTITY: _quantity,
    INT_OR_STRING: _int_or_string,
    FIELDS_V1: _raw_json,
    RAW_EXTENSION: _raw_json,
}


# --- generation from Kubernetes' sources (a development step) ----------------------------

_MESSAGE = re.compile(r"^message (\w+) \{(.*?)^\}", re.S | re.M)
_PROTO_FIELD = re.compile(
    r"^\s*(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;",
    re.M,
)
_SCALARS = {"string", "bytes", "bool", "int32", "int64", "double", "float", "uint32", "uint64"}
_STRUCT = re.compile(r"^type (\w+) struct \{(.*?)^\}", re.S | re.M)
_GO_FIELD = re.compile(r"^\s*\w+\s+(\S+)\s+`([^`]*)`", re.M)


def _go_fields(go_source: str) -> dict[tuple[str, int], tuple[bool, bool]]:
    """(struct, protobuf number) -> (is a pointer, json omitempty) from Go struct tags."""
    found = {}
    for struct_name, body in _STRUCT.findall(go_source):
        for go_type, tags in _GO_FIELD.findall(body):
            number = re.search(r'protobuf:"\w+,(\d+),', tags)
            json_tag = re.search(r'json:"([^"]*)"', tags)
            if number is None:
                continue
            omitempty = json_tag is not None and "omitempty" in json_tag.group(1)
            found[(struct_name, int(number.group(1)))] = (go_type.startswith("*"), omitempty)
    return found


def parse_package(proto_source: str, go_sources: list[str]) -> Table:
    """One package's messages from its generated.proto and Go type definitions."""
    package = re.search(r"^package ([\w.]+);", proto_source, re.M)
    assert package is not None
    prefix = package.group(1) + "."
    go = {k: v for source in go_sources for k, v in _go_fields(source).items()}

    def qualified(kind: str) -> str:
        if kind in _SCALARS:
            return kind
        return kind.lstrip(".") if "." in kind else prefix + kind

    table: Table = {}
    for name, body in _MESSAGE.findall(proto_source):
        fields: dict[str, Field] = {}
        for label, kind, key, value, field_name, number in _PROTO_FIELD.findall(body):
            pointer, omitempty = go.get((name, int(number)), (False, True))
            keep_zero = pointer or not omitempty
            if kind.startswith("map<"):
                fields[number] = [field_name, "map", [qualified(key), qualified(value)], keep_zero]
            else:
                fields[number] = [
                    field_name,
                    "rep" if label == "repeated" else "opt",
                    qualified(kind),
                    keep_zero,
                ]
        table[prefix + name] = fields
    return table


def generate(packages: list[tuple[str, list[str]]], roots: list[str]) -> Table:
    """The messages reachable from `roots` across the parsed packages."""
    everything: Table = {}
    for proto_source, go_sources in packages:
        everything.update(parse_package(proto_source, go_sources))
    wanted: Table = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in wanted or name in _SPECIAL:
            continue
        if name not in everything:
            raise KeyError(f"message {name} is in none of the parsed packages")
        wanted[name] = everything[name]
        for _, label, kind, _ in everything[name].values():
            for item in kind if label == "map" else [kind]:
                if item not in _SCALARS:
                    pending.append(item)
    return dict(sorted(wanted.items()))


def encode(table: Table) -> bytes:
    text = json.dumps(table, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


# The packages the built-in kinds come from, in k8s.io/api and k8s.io/apimachinery 1.32.
API_PACKAGES = (
    "core/v1",
    "apps/v1",
    "batch/v1",
    "autoscaling/v1",
    "autoscaling/v2",
    "policy/v1",
    "rbac/v1",
    "coordination/v1",
    "events/v1",
    "networking/v1",
)
APIMACHINERY_PACKAGES = (
    "pkg/apis/meta/v1",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
    "pkg/api/resource",
)


def _read_package(directory: Path) -> tuple[str, list[str]]:
    go_sources = [
        p.read_text()
        for p in sorted(directory.glob("*.go"))
        if not p.name.endswith(("_test.go", ".pb.go")) and not p.name.startswith("zz_")
    ]
    return (directory / "generated.proto").read_text(), go_sources


def generate_from_sources(api: Path, apimachinery: Path) -> Table:
    """The table from checkouts of k8s.io/api and k8s.io/apimachinery."""
    from driftline.apiserver.resources import BUILTIN_RESOURCES

    packages = [_read_package(api / p) for p in API_PACKAGES]
    packages += [_read_package(apimachinery / p) for p in APIMACHINERY_PACKAGES]
    roots = [
        message_for(r.api_version, r.kind)
        for r in BUILTIN_RESOURCES
        if r.group != "apiextensions.k8s.io"  # in k8s.io/apiextensions-apiserver, not here
    ]
    options = [META + kind for kind in sorted(META_OPTIONS_KINDS)]
    return generate(packages, [*roots, *options, UNKNOWN, "k8s.io.api.autoscaling.v1.Scale"])


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit(
            "usage: python -m driftline.apiserver.protobuf K8S_IO_API_DIR K8S_IO_APIMACHINERY_DIR"
        )
    TABLE_FILE.write_bytes(encode(generate_from_sources(Path(sys.argv[1]), Path(sys.argv[2]))))
    print(f"wrote {TABLE_FILE}")
