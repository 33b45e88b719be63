"""Table responses: columns, cells, durations and the Accept negotiation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubesim.crd import crd_resource_types
from kubesim.resources import builtin_by_group_resource
from kubesim.tables import human_duration, table, wants_table

NOW = datetime(2026, 1, 2, 0, 0, 0, tzinfo=UTC)
TYPES = builtin_by_group_resource()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60 * 5, "3h5m"),
        (10 * 3600, "10h"),
        (50 * 3600, "2d2h"),
        (9 * 86400, "9d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_pod_columns() -> None:
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T23:59:00Z", "labels": {"a": "b"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [{"ready": True, "restartCount": 2}, {"ready": False, "restartCount": 1}],
        },
    }
    result = table(TYPES[("", "pods")], [pod], resource_version="7", now=NOW)
    assert [c["name"] for c in result["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
    ]
    assert result["rows"][0]["cells"] == ["p", "1/2", "Running", 3, "60s", "10.0.0.5", "n1"]
    assert result["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pod["metadata"],
    }
    assert result["metadata"] == {"resourceVersion": "7"}
    assert "object" not in table(TYPES[("", "pods")], [pod], include_object="None", now=NOW)["rows"][0]


def test_node_status_and_roles() -> None:
    node = {
        "metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    cells = table(TYPES[("", "nodes")], [node], now=NOW)["rows"][0]["cells"]
    assert cells[:3] == ["n", "NotReady,SchedulingDisabled", "control-plane"]


def test_custom_resource_printer_columns() -> None:
    crd = {
        "metadata": {"name": "ws.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "W", "plural": "ws"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [
                        {"name": "State", "type": "string", "jsonPath": ".status.state"},
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": 1},
                    ],
                }
            ],
        },
    }
    [rt] = crd_resource_types(crd)
    result = table(rt, [{"metadata": {"name": "w1"}, "spec": {"size": 3}, "status": {"state": "ok"}}], crd=crd, now=NOW)
    assert [(c["name"], c["priority"]) for c in result["columnDefinitions"]] == [("Name", 0), ("State", 0), ("Size", 1)]
    assert result["rows"][0]["cells"] == ["w1", "ok", 3]


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
            "application/json",
            True,
        ),
        ("application/json", False),
        ("application/json, */*", False),
        ("application/vnd.kubernetes.protobuf,application/json", False),
        ("", False),
    ],
)
def test_wants_table(accept: str, wanted: bool) -> None:
    assert wants_table(accept) is wanted
