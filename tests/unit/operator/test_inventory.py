"""The agent's inventory annotation: parser, writer, and the planner's view of the node."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpu_operator.errors import InventoryError
from gpu_operator.inventory import Inventory, InventoryGpu, dump_inventory, node_gpus, parse_inventory


def _doc(*gpus: dict[str, Any]) -> str:
    return json.dumps({"version": "v1", "gpus": list(gpus)})


def test_round_trip() -> None:
    inventory = Inventory(
        (
            InventoryGpu(0, "0x233010DE", True, "NVIDIA H100 80GB HBM3", True, {"1g.10gb": 7}),
            InventoryGpu(1, "0x1EB810DE", False, "Tesla T4"),
        )
    )
    assert parse_inventory(dump_inventory(inventory)) == inventory


def test_unknown_keys_are_ignored_and_gpus_sorted() -> None:
    text = _doc(
        {"index": 1, "pciId": "0x20B010DE", "migCapable": True, "uuid": "GPU-1"},
        {"index": 0, "pciId": "0x20B010DE", "migCapable": True},
    )
    assert [g.index for g in parse_inventory(text).gpus] == [0, 1]


def test_node_gpus_use_catalog_tables() -> None:
    text = _doc(
        {"index": 0, "pciId": "0x233010DE", "migCapable": True},
        {"index": 1, "pciId": "0x1EB810DE", "migCapable": False},
        {"index": 2, "pciId": "0xFFFF10DE", "migCapable": True},
    )
    gpus = node_gpus(parse_inventory(text))
    assert gpus[0].table is not None and "H100" in gpus[0].table.model
    assert gpus[1].table is None and gpus[2].table is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"version": "v2", "gpus": []}', "version 'v2' is not supported"),
        ('{"version": "v1"}', r"gpus: expected a list"),
        (_doc({"pciId": "0x233010DE", "migCapable": True}), r"gpus\[0\]\.index"),
        (_doc({"index": -1, "pciId": "0x233010DE", "migCapable": True}), r"gpus\[0\]\.index"),
        (_doc({"index": True, "pciId": "0x233010DE", "migCapable": True}), r"gpus\[0\]\.index"),
        (_doc({"index": 0, "pciId": "H100", "migCapable": True}), r"gpus\[0\]\.pciId"),
        (_doc({"index": 0, "pciId": "0x233010DE", "migCapable": "yes"}), r"gpus\[0\]\.migCapable"),
        (_doc({"index": 0, "pciId": "0x233010DE", "migCapable": True, "product": 3}), r"\.product"),
        (_doc({"index": 0, "pciId": "0x233010DE", "migCapable": True, "migEnabled": 1}), r"\.migEnabled"),
        (_doc({"index": 0, "pciId": "0x233010DE", "migCapable": True, "migDevices": {"1g.10gb": -1}}), "migDevices"),
        (_doc(1), r"gpus\[0\]: expected an object"),
        (
            _doc(
                {"index": 0, "pciId": "0x233010DE", "migCapable": True},
                {"index": 0, "pciId": "0x233010DE", "migCapable": True},
            ),
            "duplicate GPU indices",
        ),
    ],
)
def test_malformed_inventory(text: str, match: str) -> None:
    with pytest.raises(InventoryError, match=match):
        parse_inventory(text)
