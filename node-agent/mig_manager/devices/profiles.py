"""Profile tables as a device reports them: go-nvlib's naming formula, and differences from the catalog.

Pure: no NVML here, so the rules are tested without hardware.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..catalog import (
    CI_PROFILE_CONSTANTS,
    GI_PROFILE_CONSTANTS,
    ComputeInstanceProfile,
    GpuModel,
    ProfileTable,
    default_catalog,
)
from ..errors import MigManagerError
from ..spec import ProfileName, parse_profile_name

_MIB = 1024 * 1024
_GIB = 1024 * 1024 * 1024

# GI profile constant suffix -> (attributes, negative) of the canonical name (mig-facts 1.3).
_ATTRIBUTES: Mapping[str, tuple[tuple[str, ...], bool]] = {
    "REV1": (("me",), False),
    "GFX": (("gfx",), False),
    "NO_ME": (("me",), True),
    "ALL_ME": (("me.all",), False),
}

GI_CONSTANT_NAMES: Mapping[int, str] = {v: k for k, v in GI_PROFILE_CONSTANTS.items()}


def mig_memory_gb(total_bytes: int, profile_mib: int) -> int:
    """go-nvlib `getMigMemorySizeGB`: the fraction of memory rounded up to 1/8, times the total in whole GiB.

    Go's math.Round rounds halves away from zero, unlike Python's round().
    """
    fraction = math.ceil(profile_mib * _MIB / total_bytes * 8) / 8
    total_gb = (total_bytes + _GIB - 1) // _GIB
    return math.floor(fraction * total_gb + 0.5)


def canonical_gi_name(constant: str, slices: int, profile_mib: int, total_bytes: int) -> ProfileName:
    """The canonical name of a GI profile from its NVML constant (e.g. `1_SLICE_REV1`), slice count and memory.

    REV2 (double memory) has no attribute: its larger memory shows in the GB figure.
    """
    attributes: tuple[str, ...] = ()
    negative = False
    for suffix, (attrs, neg) in _ATTRIBUTES.items():
        if constant.endswith("_" + suffix):
            attributes, negative = attrs, neg
    return ProfileName(slices, slices, mig_memory_gb(total_bytes, profile_mib), attributes, negative)


def name_from_info(text: str) -> ProfileName | None:
    """A GI profile name from NVML's info `name` field (`MIG 1g.10gb`), or None when it is not a canonical GI name."""
    cleaned = text.strip().removeprefix("MIG").strip()
    if not cleaned:
        return None
    try:
        name = parse_profile_name(cleaned)
    except MigManagerError:
        return None
    return None if name.is_compute_instance else name


def heuristic_ci_table(gi_slices: int) -> dict[int, ComputeInstanceProfile]:
    """go-nvlib's CI enumeration for a GI of `gi_slices` (C == G, or 2C <= G + 1), for GPUs the catalog lacks."""
    out: dict[int, ComputeInstanceProfile] = {}
    for c in sorted(CI_PROFILE_CONSTANTS):
        if c == gi_slices or (c < gi_slices and 2 * c <= gi_slices + 1):
            out[c] = ComputeInstanceProfile(slices=c, gpu_slices=gi_slices, max_count=gi_slices // c)
    return out


def _model(model: GpuModel | str) -> GpuModel:
    return model if isinstance(model, GpuModel) else default_catalog().lookup(model)


def compare_with_catalog(table: ProfileTable, model: GpuModel | str) -> list[str]:
    """Readable differences between a device's profile table and the catalog's for `model` (empty: identical).

    Profiles are matched by profile ID (what create calls take). Never fatal: callers log these lines.
    """
    expected = _model(model).table
    out: list[str] = []
    for what, got, want in (
        ("memory slices", table.memory_slices, expected.memory_slices),
        ("compute slices", table.compute_slices, expected.compute_slices),
    ):
        if got != want:
            out.append(f"{what}: device {got}, catalog {want}")
    device = {p.id: p for p in table.gpu_instance_profiles}
    catalog = {p.id: p for p in expected.gpu_instance_profiles}
    for pid in sorted(catalog.keys() - device.keys()):
        out.append(f"profile ID {pid} ({catalog[pid].name}): in the catalog, not reported by the device")
    for pid in sorted(device.keys() - catalog.keys()):
        out.append(f"profile ID {pid} ({device[pid].name}): reported by the device, not in the catalog")
    for pid in sorted(device.keys() & catalog.keys()):
        d, c = device[pid], catalog[pid]
        where = f"profile ID {pid}"
        if d.name != c.name:
            out.append(f"{where}: device name {d.name}, catalog {c.name}")
        where = f"profile ID {pid} ({d.name})"
        if d.constant != c.constant:
            out.append(f"{where}: device constant {d.constant}, catalog {c.constant}")
        if d.slices != c.slices:
            out.append(f"{where}: device {d.slices} compute slices, catalog {c.slices}")
        if d.max_count != c.max_count:
            out.append(f"{where}: device max count {d.max_count}, catalog {c.max_count}")
        if d.placements != c.placements:
            out.append(f"{where}: device placements {_placements(d.placements)}, catalog {_placements(c.placements)}")
    for g in sorted(table.compute_instance_profiles.keys() & expected.compute_instance_profiles.keys()):
        got_ci = {c: p.max_count for c, p in table.compute_instance_profiles[g].items()}
        want_ci = {c: p.max_count for c, p in expected.compute_instance_profiles[g].items()}
        if got_ci != want_ci:
            out.append(f"compute instances in a {g}g instance: device {_cis(got_ci)}, catalog {_cis(want_ci)}")
    return out


def _placements(placements: tuple[object, ...]) -> str:
    return ", ".join(str(p) for p in placements) or "none"


def _cis(table: Mapping[int, int]) -> str:
    return ", ".join(f"{c}c x{n}" for c, n in sorted(table.items())) or "none"
