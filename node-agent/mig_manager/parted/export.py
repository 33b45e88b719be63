"""`export`: the node's current MIG state as a mig-parted config, compacted by NVIDIA's merge rules (mig-facts 2.5).

One entry per GPU (`device-filter: [<device id>]`, `devices: [i]`, `mig-enabled`, `mig-devices`), then:
entries with equal `mig-enabled` and `mig-devices` merge (devices and filters unioned and sorted); filters are dropped
when the node has one device id, and a single filter becomes a plain string; an entry covering every GPU of all its
filters gets `devices: all`; a lone remaining entry loses its filter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..devices.base import GpuBackend, MigMode
from ..spec import Devices, MigConfigEntry, MigPartedSpec, PciId
from .node import Gpu, call, current_devices, discover, ordered_devices

DEFAULT_CONFIG_LABEL = "current"
OUTPUT_FORMATS = ("yaml", "json")


@dataclass(frozen=True)
class GpuExport:
    """One GPU's exported state before merging: its device id (subsystem stripped), index, mode and instances."""

    device_id: str
    index: int
    mig_enabled: bool
    mig_devices: Mapping[str, int]


@dataclass
class _Merged:
    filters: list[str]
    devices: list[int]
    mig_enabled: bool
    mig_devices: dict[str, int]


def merge_entries(gpus: Sequence[GpuExport]) -> tuple[MigConfigEntry, ...]:
    """NVIDIA's mergeMigConfigSpecs over per-GPU entries."""
    merged: list[_Merged] = []
    for g in gpus:
        for m in merged:
            if m.mig_enabled == g.mig_enabled and m.mig_devices == dict(g.mig_devices):
                m.devices = sorted({*m.devices, g.index})
                m.filters = sorted({*m.filters, g.device_id})
                break
        else:
            merged.append(_Merged([g.device_id], [g.index], g.mig_enabled, dict(g.mig_devices)))
    by_filter: dict[str, set[int]] = {}
    for g in gpus:
        by_filter.setdefault(g.device_id, set()).add(g.index)
    entries: list[MigConfigEntry] = []
    for m in merged:
        device_filter: str | tuple[str, ...] | None
        if len(by_filter) == 1:
            device_filter = None
        elif len(m.filters) == 1:
            device_filter = m.filters[0]
        else:
            device_filter = tuple(m.filters)
        covered = sorted(set().union(*(by_filter[f] for f in m.filters)))
        devices: Devices = "all" if m.devices == covered else tuple(m.devices)
        entries.append(
            MigConfigEntry(
                devices=devices,
                mig_enabled=m.mig_enabled,
                mig_devices=m.mig_devices,
                device_filter=device_filter,
            )
        )
    if len(entries) == 1:
        only = entries[0]
        entries[0] = MigConfigEntry(
            devices=only.devices, mig_enabled=only.mig_enabled, mig_devices=only.mig_devices, device_filter=None
        )
    return tuple(entries)


def gpu_exports(backend: GpuBackend, gpus: Sequence[Gpu]) -> list[GpuExport]:
    out: list[GpuExport] = []
    for gpu in gpus:
        enabled = False
        devices: dict[str, int] = {}
        if gpu.info.mig_capable:
            where = gpu.describe()
            enabled = call(where, "reading MIG mode", backend.mig_mode, gpu.index).current == MigMode.ENABLED
            if enabled:
                instances = call(where, "listing GPU instances", backend.gpu_instances, gpu.index)
                devices = ordered_devices(current_devices(gpu.table, instances))
        device_id = str(PciId(gpu.info.pci.device, gpu.info.pci.vendor))
        out.append(GpuExport(device_id, gpu.index, enabled, devices))
    return out


def export_config(backend: GpuBackend, label: str = DEFAULT_CONFIG_LABEL) -> MigPartedSpec:
    """The node's current state as a one-config spec named `label`."""
    gpus = discover(backend)
    return MigPartedSpec(version="v1", mig_configs={label: merge_entries(gpu_exports(backend, gpus))})
