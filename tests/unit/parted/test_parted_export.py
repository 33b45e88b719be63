"""Export (mig-facts 2.5): every row of NVIDIA's merge table (export_test.go), and export of a real node."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from parted_support import cli, fresh, generated

from mig_manager.devices.simulated import SimulatedBackend
from mig_manager.parted import GpuExport, apply_config, merge_entries
from mig_manager.spec import MigConfigEntry, load_spec

A40 = "0x20B010DE"  # the ids stand in for NVIDIA's "A40"/"A80" test filters
A80 = "0x20B210DE"
ON = {"1g.5gb": 7}


def g(device_id: str, index: int, enabled: bool) -> GpuExport:
    return GpuExport(device_id, index, enabled, dict(ON) if enabled else {})


def e(
    devices: str | tuple[int, ...], enabled: bool, device_filter: str | tuple[str, ...] | None = None
) -> MigConfigEntry:
    return MigConfigEntry(
        devices=devices,  # type: ignore[arg-type]
        mig_enabled=enabled,
        mig_devices=dict(ON) if enabled else {},
        device_filter=device_filter,
    )


MERGE_TABLE = [
    pytest.param([], [], id="none"),
    pytest.param([g(A40, 0, False)], [e("all", False)], id="one-gpu"),
    pytest.param([g(A40, 0, False), g(A40, 1, False)], [e("all", False)], id="same-type-same-config"),
    pytest.param(
        [g(A40, 0, False), g(A40, 1, True)], [e((0,), False), e((1,), True)], id="same-type-different-configs"
    ),
    pytest.param([g(A40, 0, False), g(A80, 1, False)], [e("all", False)], id="two-types-same-config"),
    pytest.param(
        [g(A40, 0, False), g(A40, 1, False), g(A80, 2, True), g(A80, 3, True)],
        [e("all", False, A40), e("all", True, A80)],
        id="config-per-type",
    ),
    pytest.param(
        [g(A40, 0, False), g(A40, 1, True), g(A80, 2, False), g(A80, 3, True)],
        [e((0, 2), False, (A40, A80)), e((1, 3), True, (A40, A80))],
        id="configs-across-types",
    ),
]


@pytest.mark.parametrize(("gpus", "expected"), MERGE_TABLE)
def test_merge_table(gpus: list[GpuExport], expected: list[MigConfigEntry]) -> None:
    assert list(merge_entries(gpus)) == expected


def test_merge_keeps_a_partial_type_as_an_index_list() -> None:
    gpus = [g(A40, 0, True), g(A40, 1, False), g(A80, 2, True)]
    assert list(merge_entries(gpus)) == [e((0, 2), True, (A40, A80)), e((1,), False, A40)]


def test_merge_compares_instance_counts() -> None:
    gpus = [GpuExport(A40, 0, True, {"7g.40gb": 1}), GpuExport(A40, 1, True, {"1g.5gb": 7})]
    entries = merge_entries(gpus)
    assert [x.devices for x in entries] == [(0,), (1,)]


def test_export_of_a_node_round_trips_through_the_cli(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x3")
    configs = generated("H100x3")
    assert apply_config(backend, configs, "all-balanced").ok
    code, out, err = cli(["export", "--sim-state", str(backend.path)])
    assert code == 0, err
    assert out == (
        "version: v1\n"
        "mig-configs:\n"
        "  current:\n"
        "    - devices: all\n"
        "      mig-enabled: true\n"
        "      mig-devices:\n"
        '        "3g.40gb": 1\n'
        '        "2g.20gb": 1\n'
        '        "1g.10gb": 2\n'
    )
    code, out, err = cli(["export", "-o", "json", "-l", "mine", "--sim-state", str(fresh(backend).path)])
    assert code == 0, err
    loaded = load_spec(out).spec
    assert list(loaded.mig_configs) == ["mine"]


def test_export_disabled_gpus_and_gpus_without_mig(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x2,0x1EB810DE")
    configs = load_spec(
        """
version: v1
mig-configs:
  one:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
"""
    ).spec
    assert apply_config(backend, configs, "one").ok
    code, out, err = cli(["export", "--sim-state", str(backend.path)])
    assert code == 0, err
    entries = load_spec(out).spec.mig_configs["current"]
    assert entries == (
        MigConfigEntry(devices=(0,), mig_enabled=True, mig_devices={"7g.80gb": 1}, device_filter="0x233010DE"),
        MigConfigEntry(devices=(1, 2), mig_enabled=False, mig_devices={}, device_filter=("0x1EB810DE", "0x233010DE")),
    )
