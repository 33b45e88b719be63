"""The GPU inventory annotation `nvidia.com/mig.inventory`, in the format the operator reads
(operator/gpu_operator/inventory.py):

    {"version": "v1", "gpus": [{"index": 0, "pciId": "0x233010DE", "migCapable": true,
     "product": "NVIDIA H100 80GB HBM3", "migEnabled": true, "migDevices": {"1g.10gb": 7}}]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..devices.base import GpuBackend, MigMode
from ..parted.node import call, current_devices, discover, ordered_devices
from ..spec import PciId

VERSION = "v1"


@dataclass(frozen=True)
class GpuEntry:
    index: int
    pci_id: str
    mig_capable: bool
    product: str = ""
    mig_enabled: bool | None = None
    mig_devices: Mapping[str, int] = field(default_factory=dict)


def encode(gpus: Sequence[GpuEntry]) -> str:
    """Compact JSON with keys in a fixed order (so an unchanged inventory is an unchanged annotation). Pure."""
    out: list[dict[str, Any]] = []
    for g in sorted(gpus, key=lambda g: g.index):
        item: dict[str, Any] = {"index": g.index, "pciId": g.pci_id, "migCapable": g.mig_capable}
        if g.product:
            item["product"] = g.product
        if g.mig_enabled is not None:
            item["migEnabled"] = g.mig_enabled
        if g.mig_devices:
            item["migDevices"] = dict(g.mig_devices)
        out.append(item)
    return json.dumps({"version": VERSION, "gpus": out}, separators=(",", ":"))


def read(backend: GpuBackend) -> list[GpuEntry]:
    """The node's GPUs and their current geometry (raises parted.StepError when the GPUs cannot be read)."""
    entries: list[GpuEntry] = []
    for gpu in discover(backend):
        pci = str(PciId(gpu.info.pci.device, gpu.info.pci.vendor))
        if not gpu.info.mig_capable:
            entries.append(GpuEntry(gpu.index, pci, False, gpu.info.product_name))
            continue
        where = gpu.describe()
        mode = call(where, "reading MIG mode", backend.mig_mode, gpu.index).current
        devices: dict[str, int] = {}
        if mode == MigMode.ENABLED:
            instances = call(where, "listing GPU instances", backend.gpu_instances, gpu.index)
            devices = ordered_devices(current_devices(gpu.table, instances))
        entries.append(GpuEntry(gpu.index, pci, True, gpu.info.product_name, mode == MigMode.ENABLED, devices))
    return entries
