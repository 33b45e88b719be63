"""Warnings about what a selected config asks of the node's GPUs (NVIDIA ignores these silently), table-tested."""

from __future__ import annotations

import pytest

from mig_manager.agent.selection import describe_entry, describe_gpus, selection_warnings
from mig_manager.cli import parse_gpus
from mig_manager.planner import device_types_of_node, generate_config
from mig_manager.spec import MigConfigEntry, select_config

H100 = "0x233010DE"
A100_40 = "0x20B010DE"


def entry(devices: str | tuple[int, ...] = "all", device_filter: str | tuple[str, ...] | None = None) -> MigConfigEntry:
    return MigConfigEntry(devices=devices, mig_enabled=True, mig_devices={"1g.10gb": 7}, device_filter=device_filter)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entries", "gpus"),
    [
        ((entry(),), "H100x8"),
        ((entry(device_filter=H100),), "H100x8"),
        ((entry(device_filter=(A100_40, H100)),), "H100x8"),
        # Some entries select nothing, one selects GPUs: normal (a config shared by nodes of several GPU types).
        ((entry(device_filter=A100_40), entry(device_filter=H100)), "H100x8"),
        ((entry(devices=(0, 1), device_filter=A100_40), entry(devices=(7,))), "H100x8"),
        ((entry(device_filter=A100_40),), "A100-40GBx1,H100x1"),
    ],
    ids=["all", "filter", "filters", "one-entry-of-two", "indices", "mixed-node"],
)
def test_a_config_that_selects_some_gpu_gives_no_warning(entries: tuple[MigConfigEntry, ...], gpus: str) -> None:
    assert selection_warnings("c", entries, parse_gpus(gpus)) == ()


def test_nvidias_generated_config_for_several_gpu_types() -> None:
    """Configs with one entry per GPU type: on any one node all entries but one select nothing, and that is no
    warning; a config with entries only for other GPU types (`all-1g.5gb` on an H100 node) selects nothing at all."""
    spec = generate_config(device_types_of_node(parse_gpus("A100-40GBx1,H100x1,A30x1")))
    for gpus in ("H100x8", "A100-40GBx8", "A30x4"):
        for name in ("all-disabled", "all-enabled", "all-balanced"):
            _, entries = select_config(spec, name)
            assert selection_warnings(name, entries, parse_gpus(gpus)) == (), (gpus, name)
    assert len(select_config(spec, "all-balanced")[1]) == 3  # one entry per type: two select nothing on any node
    _, entries = select_config(spec, "all-1g.5gb")
    (warning,) = selection_warnings("all-1g.5gb", entries, parse_gpus("H100x8"))
    assert "selects none of this node's GPUs: entry 0 (device-filter 0x20B010DE" in warning


@pytest.mark.parametrize(
    ("entries", "gpus", "expected"),
    [
        (
            (entry(device_filter=A100_40),),
            "H100x8",
            "MIG config 'c' selects none of this node's GPUs: entry 0 (device-filter 0x20B010DE); this node has "
            "GPUs 0-7 (0x233010DE, H100-SXM5-80GB); nothing to change",
        ),
        (
            (entry(device_filter=A100_40), entry(devices=(0,), device_filter=("0x20B210DE", "0x20F110DE"))),
            "H100x2,A30x1",
            "MIG config 'c' selects none of this node's GPUs: entry 0 (device-filter 0x20B010DE), entry 1 "
            "(device-filter 0x20B210DE, 0x20F110DE; devices 0); this node has GPUs 0-1 (0x233010DE, H100-SXM5-80GB) "
            "and GPU 2 (0x20B710DE, A30-PCIE-24GB); nothing to change",
        ),
        (
            (entry(device_filter="not-a-pci-id"),),
            "H100x1",
            "entry 0 (device-filter not-a-pci-id); this node has GPU 0 (0x233010DE, H100-SXM5-80GB)",
        ),
        ((), "H100x1", "MIG config 'c' selects none of this node's GPUs: no entries; this node has GPU 0"),
        ((entry(),), "", "this node has no GPUs; nothing to change"),
    ],
    ids=["other-gpu-type", "entries-and-types", "unparseable-filter", "no-entries", "no-gpus"],
)
def test_a_config_that_selects_no_gpu_says_which_filters_and_which_gpus(
    entries: tuple[MigConfigEntry, ...], gpus: str, expected: str
) -> None:
    warnings = selection_warnings("c", entries, parse_gpus(gpus) if gpus else [])
    assert len(warnings) == 1 and expected in warnings[0], warnings


def test_indices_beyond_the_node_warn_per_entry_and_when_nothing_is_left() -> None:
    gpus = parse_gpus("H100x8")
    partly = selection_warnings("c", (entry(devices=(0, 9)),), gpus)
    assert partly == ("MIG config 'c' entry 0 selects GPU index 9, but this node has GPUs 0-7; ignored",)
    wholly = selection_warnings("c", (entry(devices=(8, 9)),), gpus)
    assert wholly[0] == "MIG config 'c' entry 0 selects GPU index 8, 9, but this node has GPUs 0-7; ignored"
    assert wholly[1].startswith("MIG config 'c' selects none of this node's GPUs: entry 0 (devices 8, 9); this node")


def test_a_filter_with_subsystem_ids_shows_the_gpus_subsystem_ids() -> None:
    gpus = parse_gpus("0x233010DE:0x16C110DEx2")
    assert describe_gpus(gpus) == "GPUs 0-1 (0x233010DE, H100-SXM5-80GB)"
    assert describe_gpus(gpus, subsystem=True) == "GPUs 0-1 (0x233010DE:0x16C110DE, H100-SXM5-80GB)"
    warnings = selection_warnings("c", (entry(device_filter="0x233010DE:0x000010DE"),), gpus)
    assert "(0x233010DE:0x16C110DE, H100-SXM5-80GB)" in warnings[0]


def test_descriptions() -> None:
    assert describe_entry(3, entry()) == "entry 3 (devices all)"
    assert describe_entry(0, entry(devices=())) == "entry 0 (devices [])"
    assert describe_gpus(parse_gpus("H100x1,A30x1,H100x1")) == (
        "GPUs 0, 2 (0x233010DE, H100-SXM5-80GB) and GPU 1 (0x20B710DE, A30-PCIE-24GB)"
    )
