"""Structural schemas: pruning, defaulting and validation messages like the real server's."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.crd import apply_defaults, crd_resource_types, prepare_custom_object, prune, validate
from kubesim.errors import FieldError

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string", "enum": ["a", "b"]},
                "count": {"type": "integer", "minimum": 1, "maximum": 8, "default": 1},
                "name": {"type": "string", "maxLength": 4, "pattern": "^[a-z]+$"},
                "ratio": {"type": "number"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "x-kubernetes-list-type": "set"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "opt": {"type": "string", "nullable": True},
                "nested": {
                    "type": "object",
                    "properties": {"flag": {"type": "boolean", "default": False}},
                    "default": {},
                },
            },
        },
    },
}


def _errors(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    _, _, errs = prepare_custom_object(
        {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"}, "spec": spec}, SCHEMA
    )
    return [(e.field, e.reason, e.message) for e in errs]


def test_valid_object_is_defaulted() -> None:
    obj, pruned, errs = prepare_custom_object(
        {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"mode": "a"}},
        SCHEMA,
    )
    assert errs == [] and pruned == []
    assert obj["spec"] == {"mode": "a", "count": 1, "nested": {"flag": False}}
    assert obj["metadata"] == {"name": "n", "labels": {"a": "b"}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"mode": "c"}, ("spec.mode", "FieldValueNotSupported", 'Unsupported value: "c": supported values: "a", "b"')),
        (
            {"mode": 3},
            (
                "spec.mode",
                "FieldValueInvalid",
                'Invalid value: "integer": spec.mode in body must be of type string: "integer"',
            ),
        ),
        ({}, ("spec.mode", "FieldValueRequired", "Required value")),
        (
            {"mode": "a", "count": 0},
            (
                "spec.count",
                "FieldValueInvalid",
                "Invalid value: 0: spec.count in body should be greater than or equal to 1",
            ),
        ),
        (
            {"mode": "a", "count": 9},
            (
                "spec.count",
                "FieldValueInvalid",
                "Invalid value: 9: spec.count in body should be less than or equal to 8",
            ),
        ),
        (
            {"mode": "a", "count": 1.5},
            (
                "spec.count",
                "FieldValueInvalid",
                'Invalid value: "number": spec.count in body must be of type integer: "number"',
            ),
        ),
        ({"mode": "a", "name": "abcde"}, ("spec.name", "TooLong", "Too long: may not be more than 4 bytes")),
        (
            {"mode": "a", "name": "AB"},
            ("spec.name", "FieldValueInvalid", "Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"),
        ),
        ({"mode": "a", "tags": ["x", "y", "z"]}, ("spec.tags", "TooMany", "Too many: 3: must have at most 2 items")),
        ({"mode": "a", "tags": ["x", "x"]}, ("spec.tags[1]", "FieldValueDuplicate", 'Duplicate value: "x"')),
        (
            {"mode": "a", "labels": {"k": 1}},
            (
                "spec.labels.k",
                "FieldValueInvalid",
                'Invalid value: "integer": spec.labels.k in body must be of type string: "integer"',
            ),
        ),
        (
            {"mode": "a", "port": True},
            (
                "spec.port",
                "FieldValueInvalid",
                'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
            ),
        ),
    ],
)
def test_validation_errors(spec: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert expected in _errors(spec)


def test_accepted_edge_values() -> None:
    assert _errors({"mode": "a", "ratio": 1, "port": "http", "opt": None, "count": 2.0}) == []
    assert _errors({"mode": "b", "port": 8080, "free": {"x": [1, {"y": None}]}}) == []


def test_pruning_reports_paths_and_keeps_preserved_fields() -> None:
    pruned: list[str] = []
    out = prune(
        {
            "apiVersion": "v",
            "kind": "k",
            "metadata": {},
            "spec": {"mode": "a", "zzz": 1, "free": {"q": 1}, "nested": {"extra": True}},
            "top": 1,
        },
        SCHEMA,
        "",
        pruned,
        root=True,
    )
    assert sorted(pruned) == ["spec.nested.extra", "spec.zzz", "top"]
    assert out == {
        "apiVersion": "v",
        "kind": "k",
        "metadata": {},
        "spec": {"mode": "a", "free": {"q": 1}, "nested": {}},
    }


def test_defaults_do_not_override() -> None:
    assert apply_defaults({"spec": {"count": 5}}, SCHEMA)["spec"]["count"] == 5


def test_one_of_and_any_of() -> None:
    schema = {"type": "object", "properties": {"v": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    errs: list[FieldError] = []
    validate({"v": 1}, schema, "", errs)
    validate({"v": "x"}, schema, "", errs)
    assert errs == []
    validate({"v": True}, schema, "", errs)
    assert [e.field for e in errs] == ["v"]


def test_crd_resource_types() -> None:
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}, "scale": {}}},
                {"name": "v2", "served": False, "storage": False},
            ],
        },
    }
    [rt] = crd_resource_types(crd)
    assert (rt.group, rt.version, rt.plural, rt.singular, rt.kind) == (
        "example.com",
        "v1",
        "widgets",
        "widget",
        "Widget",
    )
    assert rt.namespaced is False and rt.custom and rt.subresources == ("status", "scale") and rt.short_names == ("wd",)


def test_prune_keeps_object_metadata_when_the_crd_declares_it() -> None:
    """controller-gen (and NVIDIA's ClusterPolicy CRD) declare `metadata: {type: object}` at the root."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    obj = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "n", "labels": {"k": "v"}},
        "spec": {"a": "1", "b": 2},
    }
    pruned: list[str] = []
    out = prune(obj, schema, "", pruned, root=True)
    assert out["metadata"] == {"name": "n", "labels": {"k": "v"}}
    assert out["spec"] == {"a": "1"}
    assert pruned == ["spec.b"]
