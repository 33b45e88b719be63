"""The protobuf codec for the kinds clients send that way (helm release Secrets, DeleteOptions, kubectl create)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim import protobuf

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20)


def test_helm_release_secret_round_trip() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": "sh.helm.release.v1.r1.v1",
            "namespace": "ns1",
            "labels": {"name": "r1", "owner": "helm", "status": "deployed", "version": "1"},
        },
        "data": {"release": base64.b64encode(b"\x1f\x8b binary \x00 gzip").decode()},
    }
    assert protobuf.decode(protobuf.encode(secret)) == secret


def test_hand_encoded_bytes_decode() -> None:
    # k8s\0 + Unknown{typeMeta{apiVersion "v1", kind "ConfigMap"}, raw ConfigMap{metadata{name "c"}, data{"k":"v"}}}
    meta = b"\x0a\x01c"
    entry = b"\x0a\x01k\x12\x01v"
    raw = b"\x0a" + bytes([len(meta)]) + meta + b"\x12" + bytes([len(entry)]) + entry
    type_meta = b"\x0a\x02v1\x12\x09ConfigMap"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12" + bytes([len(raw)]) + raw
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"k": "v"},
    }


def test_go_zero_values_are_omitted() -> None:
    # Go writes empty strings and a zero creationTimestamp for unset fields; JSON omits them.
    meta = protobuf.encode_message("ObjectMeta", {"name": "n", "generateName": "", "generation": 0})
    meta += b"\x42\x00"  # field 8 (creationTimestamp), an empty Time
    raw = b"\x0a" + bytes([len(meta)]) + meta
    decoded = protobuf.decode_message("Namespace", raw)
    assert decoded == {"metadata": {"name": "n"}}


def test_delete_options() -> None:
    opts = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
        "preconditions": {"uid": "u"},
        "dryRun": ["All"],
    }
    assert protobuf.decode(protobuf.encode(opts)) == opts
    assert protobuf.decode_as(protobuf.MAGIC + b"\x12\x00", "DeleteOptions") == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "magic"),
        (
            protobuf.MAGIC
            + protobuf.encode_message("Unknown", {"typeMeta": {"apiVersion": "apps/v1", "kind": "Deployment"}}),
            "does not decode",
        ),
        (b"k8s\x00\x0a\x80", "truncated"),
        (b"k8s\x00\x0b", "unsupported wire type"),
    ],
)
def test_errors(body: bytes, message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.decode(body)


@given(
    name=names,
    labels=st.dictionaries(names, st.text(max_size=10), max_size=4),
    data=st.dictionaries(names, st.binary(max_size=30), max_size=4),
    finalizers=st.lists(names, max_size=3),
)
def test_secret_round_trip_property(
    name: str, labels: dict[str, str], data: dict[str, bytes], finalizers: list[str]
) -> None:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if finalizers:
        meta["finalizers"] = finalizers
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
    if data:
        secret["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    assert protobuf.decode(protobuf.encode(secret)) == secret
