"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`): a small wire-format codec. Pure.

The envelope is the magic `k8s\\0` followed by a `runtime.Unknown` (1: typeMeta{1: apiVersion, 2: kind}, 2: raw,
3: contentEncoding, 4: contentType); `raw` is the object's own message with the field numbers of k8s.io/api
`generated.proto`. Only the kinds real clients send this way are described (helm's release Secrets and DeleteOptions;
kubectl's create namespace/configmap/secret/serviceaccount); anything else is rejected with a clear error.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from kubesim.errors import KubeSimError

MAGIC = b"k8s\x00"


class ProtobufError(KubeSimError):
    """A protobuf body that is malformed or of a kind kubesim does not decode."""


# A field is (json name, type, repeated). Types: string, bytes, int, bool, time, map_ss (map<string,string>),
# map_sb (map<string,bytes>), or the name of another message in MESSAGES.
Field = tuple[str, str, bool]
MESSAGES: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "Unknown": {
        1: ("typeMeta", "TypeMeta", False),
        2: ("raw", "rawbytes", False),
        3: ("contentEncoding", "string", False),
        4: ("contentType", "string", False),
    },
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        4: ("selfLink", "string", False),
        5: ("uid", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("generation", "int", False),
        8: ("creationTimestamp", "time", False),
        9: ("deletionTimestamp", "time", False),
        10: ("deletionGracePeriodSeconds", "int", False),
        11: ("labels", "map_ss", False),
        12: ("annotations", "map_ss", False),
        13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", "string", True),
    },
    "OwnerReference": {
        1: ("kind", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "ObjectReference": {
        1: ("kind", "string", False),
        2: ("namespace", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("fieldPath", "string", False),
    },
    "LocalObjectReference": {1: ("name", "string", False)},
    "Time": {1: ("seconds", "int", False), 2: ("nanos", "int", False)},
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map_sb", False),
        3: ("type", "string", False),
        4: ("stringData", "map_ss", False),
        5: ("immutable", "bool", False),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "map_ss", False),
        3: ("binaryData", "map_sb", False),
        4: ("immutable", "bool", False),
    },
    "Namespace": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "NamespaceSpec", False),
        3: ("status", "NamespaceStatus", False),
    },
    "NamespaceSpec": {1: ("finalizers", "string", True)},
    "NamespaceStatus": {1: ("phase", "string", False)},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta", False),
        2: ("secrets", "ObjectReference", True),
        3: ("automountServiceAccountToken", "bool", False),
        4: ("imagePullSecrets", "LocalObjectReference", True),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int", False),
        2: ("preconditions", "Preconditions", False),
        3: ("orphanDependents", "bool", False),
        4: ("propagationPolicy", "string", False),
        5: ("dryRun", "string", True),
    },
    "Preconditions": {1: ("uid", "string", False), 2: ("resourceVersion", "string", False)},
}

# Kinds decodable from an Unknown envelope: (apiVersion, kind) -> message.
TOP_LEVEL: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """The raw (number, wire type, value) triples of one message."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            out.append((number, wire, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            if pos + 8 > len(data):
                raise ProtobufError("truncated fixed64 field")
            out.append((number, wire, int.from_bytes(data[pos : pos + 8], "little")))
            pos += 8
        elif wire == 5:
            if pos + 4 > len(data):
                raise ProtobufError("truncated fixed32 field")
            out.append((number, wire, int.from_bytes(data[pos : pos + 4], "little")))
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        if not isinstance(value, bytes):
            raise ProtobufError("expected a length-delimited string")
        return value.decode()
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise ProtobufError("expected length-delimited bytes")
        return base64.b64encode(value).decode()
    if kind == "rawbytes":
        if not isinstance(value, bytes):
            raise ProtobufError("expected length-delimited bytes")
        return value
    if kind == "int":
        if not isinstance(value, int):
            raise ProtobufError("expected a varint")
        return _signed(value)
    if kind == "bool":
        if not isinstance(value, int):
            raise ProtobufError("expected a varint")
        return bool(value)
    raise AssertionError(kind)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = MESSAGES[name]
    result: dict[str, Any] = {}
    for number, _wire, value in fields(data):
        spec = schema.get(number)
        if spec is None:
            continue  # unknown fields are skipped, as protobuf parsers do
        key, kind, repeated = spec
        if kind in ("map_ss", "map_sb"):
            if not isinstance(value, bytes):
                raise ProtobufError(f"map field {key} is not length-delimited")
            entry = {n: v for n, _w, v in fields(value)}
            k = _scalar("string", entry.get(1, b""))
            v = _scalar("string" if kind == "map_ss" else "bytes", entry.get(2, b""))
            result.setdefault(key, {})[k] = v
            continue
        if kind == "time":
            if not isinstance(value, bytes):
                raise ProtobufError(f"time field {key} is not length-delimited")
            parts = decode_message("Time", value)
            if not parts.get("seconds"):
                continue  # the zero Time is how Go writes "unset"
            decoded: Any = datetime.fromtimestamp(parts["seconds"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind in MESSAGES:
            if not isinstance(value, bytes):
                raise ProtobufError(f"message field {key} is not length-delimited")
            decoded = decode_message(kind, value)
        else:
            decoded = _scalar(kind, value)
            if not repeated and (decoded == "" or (name == "ObjectMeta" and decoded == 0)):
                continue  # Go writes zero values of non-pointer fields; JSON omits them
        if repeated:
            result.setdefault(key, []).append(decoded)
        else:
            result[key] = decoded
    return result


def decode(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\0`-prefixed body into the JSON form of the object (apiVersion and kind included)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body does not start with the k8s\\x00 magic")
    envelope = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    api_version = str(type_meta.get("apiVersion", ""))
    kind = str(type_meta.get("kind", ""))
    if envelope.get("contentEncoding"):
        raise ProtobufError(f"unsupported content encoding {envelope['contentEncoding']!r}")
    message = TOP_LEVEL.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"kubesim does not decode protobuf bodies of {api_version} {kind}; send JSON instead")
    obj = decode_message(message, envelope.get("raw", b""))
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    return obj


# ---------------------------------------------------------------- encoding (for tests and tools)


def _put_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _put_field(number: int, wire: int, payload: bytes | int) -> bytes:
    tag = _put_varint((number << 3) | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return tag + _put_varint(payload)
    assert isinstance(payload, bytes)
    return tag + _put_varint(len(payload)) + payload


def _encode_scalar(number: int, kind: str, value: Any) -> bytes:
    if kind == "string":
        return _put_field(number, 2, str(value).encode())
    if kind == "bytes":
        return _put_field(number, 2, base64.b64decode(value))
    if kind == "rawbytes":
        return _put_field(number, 2, bytes(value))
    if kind == "int":
        return _put_field(number, 0, int(value))
    if kind == "bool":
        return _put_field(number, 0, 1 if value else 0)
    raise AssertionError(kind)


def encode_message(name: str, obj: dict[str, Any]) -> bytes:
    out = bytearray()
    for number, (key, kind, repeated) in sorted(MESSAGES[name].items()):
        if key not in obj or obj[key] is None:
            continue
        value = obj[key]
        if kind in ("map_ss", "map_sb"):
            for k in sorted(value):
                entry = _encode_scalar(1, "string", k) + _encode_scalar(
                    2, "string" if kind == "map_ss" else "bytes", value[k]
                )
                out += _put_field(number, 2, entry)
            continue
        for item in value if repeated else [value]:
            if kind == "time":
                seconds = int(datetime.strptime(item, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
                out += _put_field(number, 2, encode_message("Time", {"seconds": seconds}))
            elif kind in MESSAGES:
                out += _put_field(number, 2, encode_message(kind, item))
            else:
                out += _encode_scalar(number, kind, item)
    return bytes(out)


def encode(obj: dict[str, Any]) -> bytes:
    api_version = str(obj.get("apiVersion", ""))
    kind = str(obj.get("kind", ""))
    message = TOP_LEVEL.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"cannot encode {api_version} {kind}")
    raw = encode_message(message, obj)
    envelope = encode_message("Unknown", {"typeMeta": {"apiVersion": api_version, "kind": kind}, "raw": raw})
    return MAGIC + envelope


def decode_as(body: bytes, message: str) -> dict[str, Any]:
    """Decode the raw object of an envelope as `message`, whatever its typeMeta says (DeleteOptions bodies)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body does not start with the k8s\\x00 magic")
    envelope = decode_message("Unknown", body[len(MAGIC) :])
    return decode_message(message, envelope.get("raw", b""))
