"""What a selected config asks of this node's GPUs that NVIDIA's agent would ignore silently, as warnings. Pure.

NVIDIA's mig-parted skips a `devices` index beyond the node's GPUs, and applies nothing when no entry of the config
selects any of the node's GPUs (a `device-filter` for another GPU type, indices the node does not have); the node ends
`success` either way. This agent keeps that outcome (nothing to change is not an error) and says why.

A config where only some entries select nothing is normal and gives no warning: NVIDIA's generated config has one
entry per GPU type, most of which match nothing on any one node.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..planner import NodeGpu
from ..spec import MigConfigEntry


def _ranges(indices: Sequence[int]) -> str:
    """`0-3, 5, 7-8` for [0, 1, 2, 3, 5, 7, 8]."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def describe_entry(index: int, entry: MigConfigEntry) -> str:
    """`entry 0 (device-filter 0x20B010DE)`, `entry 1 (devices 8, 9)`: what restricts the entry's GPUs."""
    limits: list[str] = []
    filters = entry.filters()
    if filters:
        limits.append(f"device-filter {', '.join(filters)}")
    if entry.devices != "all":
        limits.append(f"devices {', '.join(str(d) for d in entry.devices) or '[]'}")
    return f"entry {index} ({'; '.join(limits) or 'devices all'})"


def describe_gpus(gpus: Sequence[NodeGpu], *, subsystem: bool = False) -> str:
    """`GPUs 0-7 (0x233010DE, H100-SXM5-80GB)`; GPUs of several types are grouped by PCI id and model."""
    if not gpus:
        return "no GPUs"
    groups: dict[tuple[str, str], list[int]] = {}
    for gpu in gpus:
        pci = str(gpu.pci if subsystem else gpu.pci.primary())
        model = gpu.table.model if gpu.table is not None else (gpu.product_name or "not MIG-capable")
        groups.setdefault((pci, model), []).append(gpu.index)
    parts = []
    for (pci, model), indices in groups.items():
        noun = "GPU" if len(indices) == 1 else "GPUs"
        parts.append(f"{noun} {_ranges(indices)} ({pci}, {model})")
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def selection_warnings(name: str, entries: Sequence[MigConfigEntry], gpus: Sequence[NodeGpu]) -> tuple[str, ...]:
    """Warnings about config `name` on these GPUs: each `devices` index beyond the node's GPUs, and a config that as a
    whole selects none of the node's GPUs (which filters and indices it asks for, which GPUs the node has)."""
    count = len(gpus)
    have = f"GPUs 0-{count - 1}" if count else "no GPUs"
    warnings: list[str] = []
    for i, entry in enumerate(entries):
        if entry.devices == "all":
            continue
        beyond = sorted(d for d in entry.devices if d >= count)
        if beyond:
            listed = ", ".join(str(d) for d in beyond)
            warnings.append(
                f"MIG config {name!r} entry {i} selects GPU index {listed}, but this node has {have}; ignored"
            )
    if not any(entry.selects(gpu.index, gpu.pci) for entry in entries for gpu in gpus):
        asked = ", ".join(describe_entry(i, e) for i, e in enumerate(entries)) or "no entries"
        subsystem = any(":" in f for e in entries for f in e.filters())
        warnings.append(
            f"MIG config {name!r} selects none of this node's GPUs: {asked}; this node has "
            f"{describe_gpus(gpus, subsystem=subsystem)}; nothing to change"
        )
    return tuple(warnings)
