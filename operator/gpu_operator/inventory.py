"""The node agent's GPU inventory annotation on its Node, and its parser. Pure.

Annotation `nvidia.com/mig.inventory`, a JSON object written by the agent (issue 6) and read by the operator to check a
custom MIG config against each node's GPUs:

    {"version": "v1",
     "gpus": [{"index": 0, "pciId": "0x233010DE", "product": "NVIDIA H100 80GB HBM3",
               "migCapable": true, "migEnabled": true, "migDevices": {"1g.10gb": 7}}]}

`index`, `pciId` and `migCapable` are required per GPU; `product`, `migEnabled` and `migDevices` (the current
geometry, profile name to count) are optional. Unknown keys are ignored, so the agent may add fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpu_operator.errors import InventoryError
from mig_manager.catalog import default_catalog
from mig_manager.planner import NodeGpu
from mig_manager.spec import PciId

INVENTORY_ANNOTATION = "nvidia.com/mig.inventory"
INVENTORY_VERSION = "v1"


@dataclass(frozen=True)
class InventoryGpu:
    index: int
    pci_id: str
    mig_capable: bool
    product: str = ""
    mig_enabled: bool | None = None
    mig_devices: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[InventoryGpu, ...]

    def mig_capable(self) -> bool:
        return any(g.mig_capable for g in self.gpus)


def _gpu(raw: Any, where: str) -> InventoryGpu:
    if not isinstance(raw, dict):
        raise InventoryError(f"{where}: expected an object with index, pciId and migCapable, got {raw!r}")
    index = raw.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InventoryError(f"{where}.index: expected a GPU index (integer >= 0), got {index!r}")
    pci = raw.get("pciId")
    if not isinstance(pci, str) or PciId.parse(pci) is None:
        raise InventoryError(f'{where}.pciId: expected a PCI id such as "0x233010DE", got {pci!r}')
    capable = raw.get("migCapable")
    if not isinstance(capable, bool):
        raise InventoryError(f"{where}.migCapable: expected true or false, got {capable!r}")
    product = raw.get("product", "")
    if not isinstance(product, str):
        raise InventoryError(f"{where}.product: expected a string, got {product!r}")
    enabled = raw.get("migEnabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InventoryError(f"{where}.migEnabled: expected true or false, got {enabled!r}")
    devices = raw.get("migDevices") or {}
    if not isinstance(devices, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in devices.items()
    ):
        raise InventoryError(f'{where}.migDevices: expected a map of profile name to count, e.g. {{"1g.10gb": 7}}')
    return InventoryGpu(index, pci, capable, product, enabled, dict(devices))


def parse_inventory(text: str) -> Inventory:
    """Parse the annotation's value; raise InventoryError saying what is wrong and where."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{INVENTORY_ANNOTATION}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InventoryError(f'{INVENTORY_ANNOTATION}: expected a JSON object {{"version": "v1", "gpus": [...]}}')
    if data.get("version") != INVENTORY_VERSION:
        raise InventoryError(f"{INVENTORY_ANNOTATION}: version {data.get('version')!r} is not supported (expected v1)")
    gpus = data.get("gpus")
    if not isinstance(gpus, list):
        raise InventoryError(f"{INVENTORY_ANNOTATION}.gpus: expected a list of GPUs, got {gpus!r}")
    parsed = tuple(_gpu(g, f"{INVENTORY_ANNOTATION}.gpus[{i}]") for i, g in enumerate(gpus))
    indices = [g.index for g in parsed]
    if len(set(indices)) != len(indices):
        raise InventoryError(f"{INVENTORY_ANNOTATION}.gpus: duplicate GPU indices {sorted(indices)}")
    return Inventory(tuple(sorted(parsed, key=lambda g: g.index)))


def dump_inventory(inventory: Inventory) -> str:
    """The annotation value for an inventory (compact JSON, keys in a fixed order)."""
    gpus = []
    for g in inventory.gpus:
        item: dict[str, Any] = {"index": g.index, "pciId": g.pci_id, "migCapable": g.mig_capable}
        if g.product:
            item["product"] = g.product
        if g.mig_enabled is not None:
            item["migEnabled"] = g.mig_enabled
        if g.mig_devices:
            item["migDevices"] = dict(g.mig_devices)
        gpus.append(item)
    return json.dumps({"version": INVENTORY_VERSION, "gpus": gpus}, separators=(",", ":"))


def node_gpus(inventory: Inventory) -> list[NodeGpu]:
    """The planner's view of the node: profile tables from the catalog by PCI id (None when not MIG-capable or the
    model is unknown to the catalog)."""
    catalog = default_catalog()
    out = []
    for g in inventory.gpus:
        pci = PciId.parse(g.pci_id)
        assert pci is not None  # checked by the parser
        model = catalog.by_pci_id(pci) if g.mig_capable else None
        out.append(NodeGpu(g.index, pci, model.table if model else None, g.product))
    return out
