"""Patch types: RFC 7386 merge, RFC 6902 JSON patch, strategic merge by patch merge keys, and apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim.patch import PatchError, apply_merge, json_patch, merge_patch, strategic_merge_patch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


@given(json_values, json_values)
def test_patches_never_mutate_their_inputs(target: Any, patch: Any) -> None:
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    merge_patch(target, patch)
    if isinstance(patch, dict):
        strategic_merge_patch(target, patch)
    assert (target, patch) == before


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2, 3]}, "c": "x"}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "add", "path": "/a/b/-", "value": 4},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "test", "path": "/e~1f", "value": "y"},
        ],
    )
    assert out == {"a": {"b": [9, 2, 3, 4]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2, 3]}, "c": "x"}


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/c", "value": "nope"}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "add", "path": "/a/b/9", "value": 1}],
        [{"op": "frobnicate", "path": "/c"}],
        {"op": "add"},
    ],
)
def test_json_patch_errors(ops: Any) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": {"b": [1]}, "c": "x"}, ops)


def test_strategic_merge_by_patch_merge_keys() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}], "ports": [{"containerPort": 80}]},
                {"name": "b", "image": "b:1"},
            ],
            "volumes": [{"name": "v1", "emptyDir": {}}],
            "tolerations": [{"key": "k1", "operator": "Exists"}],
        },
        "metadata": {"finalizers": ["f1"]},
    }
    patch = {
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}], "ports": [{"containerPort": 81}]},
                {"name": "c", "image": "c:1"},
            ],
            "volumes": [{"name": "v1", "$patch": "delete"}],
            "tolerations": [{"key": "k2", "operator": "Exists"}],
        },
        "metadata": {"finalizers": ["f2"]},
    }
    out = strategic_merge_patch(pod, patch)
    containers = out["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b", "c"]
    assert containers[0]["image"] == "a:1"
    assert containers[0]["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert containers[0]["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert out["spec"]["volumes"] == []
    # Tolerations carry no patch strategy in the real API: the list is replaced.
    assert out["spec"]["tolerations"] == [{"key": "k2", "operator": "Exists"}]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]


def test_strategic_merge_directives() -> None:
    node = {
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}]},
        "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
        "metadata": {"labels": {"x": "1"}},
    }
    out = strategic_merge_patch(
        node,
        {
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            "metadata": {"labels": {"$patch": "replace", "y": "2"}},
            "$setElementOrder/conditions": [{"type": "DiskPressure"}, {"type": "Ready"}],
        },
    )
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "DiskPressure", "status": "False"},
    ]
    assert out["metadata"]["labels"] == {"y": "2"}
    out = strategic_merge_patch(
        {"spec": {"args": ["a", "b"], "finalizers": ["x", "y"]}},
        {"spec": {"$deleteFromPrimitiveList/finalizers": ["x"], "args": ["c"]}},
    )
    assert out == {"spec": {"args": ["c"], "finalizers": ["y"]}}
    assert strategic_merge_patch({"a": {"b": 1}, "c": 2}, {"a": {"$patch": "delete"}}) == {"c": 2}


def test_apply_removes_what_the_manager_no_longer_applies() -> None:
    live = {
        "data": {"a": "1", "b": "2", "other": "kept"},
        "spec": {
            "containers": [
                {"name": "x", "image": "1"},
                {"name": "y", "image": "1"},
                {"name": "z", "image": "by-someone-else"},
            ]
        },
    }
    previous = {
        "data": {"a": "1", "b": "2"},
        "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}]},
    }
    applied = {"data": {"a": "9"}, "spec": {"containers": [{"name": "x", "image": "2"}]}}
    out = apply_merge(live, applied, previous)
    assert out["data"] == {"a": "9", "other": "kept"}
    assert out["spec"]["containers"] == [{"name": "x", "image": "2"}, {"name": "z", "image": "by-someone-else"}]
    assert apply_merge({"a": 1}, {"b": 2}, {}) == {"a": 1, "b": 2}


def test_apply_on_custom_resources_follows_the_schema_list_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "env": {"type": "array", "items": {"type": "object"}},  # atomic: replaced whole
                    "devices": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["bus", "slot"],
                        "items": {"type": "object"},
                    },
                },
            }
        },
    }
    live = {
        "spec": {
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "by-other"}],
            "devices": [{"bus": 1, "slot": 1, "x": "old"}, {"bus": 1, "slot": 2, "x": "other"}],
        }
    }
    applied = {"spec": {"env": [{"name": "A", "value": "2"}], "devices": [{"bus": 1, "slot": 1, "x": "new"}]}}
    out = apply_merge(live, applied, {}, schema=schema)
    assert out["spec"]["env"] == [{"name": "A", "value": "2"}]
    assert out["spec"]["devices"] == [{"bus": 1, "slot": 1, "x": "new"}, {"bus": 1, "slot": 2, "x": "other"}]
