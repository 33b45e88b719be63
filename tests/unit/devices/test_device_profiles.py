"""go-nvlib's naming formula and the device-vs-catalog comparison."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mig_manager.catalog import Placement, ProfileTable, default_catalog
from mig_manager.devices.profiles import (
    canonical_gi_name,
    compare_with_catalog,
    heuristic_ci_table,
    mig_memory_gb,
    name_from_info,
)
from mig_manager.spec import parse_profile_name

MODELS = [m.key for m in default_catalog().models]
MIB = 1024 * 1024


@pytest.mark.parametrize("model", MODELS)
def test_formula_gives_every_catalog_name(model: str) -> None:
    m = default_catalog().lookup(model)
    for p in m.table.gpu_instance_profiles:
        assert canonical_gi_name(p.constant, p.slices, p.memory_mib, m.memory_mib * MIB) == p.name


def test_formula_examples() -> None:
    assert mig_memory_gb(40960 * MIB, 4864) == 5  # mig-facts 1.3
    assert mig_memory_gb(143771 * MIB, 71168) == 71  # 70.5 rounds away from zero, as Go does
    assert str(canonical_gi_name("1_SLICE_NO_ME", 1, 24192, 97887 * MIB)) == "1g.24gb-me"
    assert str(canonical_gi_name("2_SLICE_ALL_ME", 2, 48512, 97887 * MIB)) == "2g.48gb+me.all"
    assert str(canonical_gi_name("4_SLICE_GFX", 4, 97408, 97887 * MIB)) == "4g.96gb+gfx"
    assert str(canonical_gi_name("1_SLICE_REV2", 1, 19968, 81920 * MIB)) == "1g.20gb"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("MIG 1g.10gb", "1g.10gb"), ("1g.24gb+me.all", "1g.24gb+me.all"), ("", None), ("MIG 1c.2g.20gb", None)],
)
def test_name_from_info(text: str, expected: str | None) -> None:
    name = name_from_info(text)
    assert (str(name) if name else None) == expected
    assert name_from_info("MIG bogus") is None


def test_heuristic_ci_table() -> None:
    assert sorted(heuristic_ci_table(7)) == [1, 2, 3, 4, 7]
    assert sorted(heuristic_ci_table(4)) == [1, 2, 4]
    assert sorted(heuristic_ci_table(2)) == [1, 2]
    assert heuristic_ci_table(7)[2].max_count == 3


def _table(model: str) -> ProfileTable:
    return default_catalog().lookup(model).table


@pytest.mark.parametrize("model", MODELS)
def test_catalog_equals_itself(model: str) -> None:
    assert compare_with_catalog(_table(model), model) == []
    assert compare_with_catalog(_table(model), default_catalog().lookup(model)) == []


def test_differences_are_readable_lines() -> None:
    table = _table("GB200")
    profiles = list(table.gpu_instance_profiles)
    profiles[0] = replace(profiles[0], name=parse_profile_name("1g.24gb"), max_count=6)  # a driver naming variant
    profiles[3] = replace(profiles[3], placements=(Placement(0, 2), Placement(2, 2)))
    profiles[4] = replace(profiles[4], id=99)
    device = replace(table, gpu_instance_profiles=tuple(profiles), memory_slices=9)
    lines = compare_with_catalog(device, "GB200")
    assert lines == [
        "memory slices: device 9, catalog 8",
        "profile ID 9 (3g.93gb): in the catalog, not reported by the device",
        "profile ID 99 (3g.93gb): reported by the device, not in the catalog",
        "profile ID 14 (2g.47gb): device placements 0:2, 2:2, catalog 0:2, 2:2, 4:2",
        "profile ID 19: device name 1g.24gb, catalog 1g.23gb",
        "profile ID 19 (1g.24gb): device max count 6, catalog 7",
    ]


def test_ci_differences() -> None:
    table = _table("H100")
    cis = dict(table.compute_instance_profiles)
    cis[7] = heuristic_ci_table(7)  # the A100-style 4c-in-7g
    lines = compare_with_catalog(replace(table, compute_instance_profiles=cis), "H100")
    assert lines == [
        "compute instances in a 7g instance: device 1c x7, 2c x3, 3c x2, 4c x1, 7c x1, "
        "catalog 1c x7, 2c x3, 3c x2, 7c x1"
    ]
