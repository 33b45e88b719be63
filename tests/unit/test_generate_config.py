"""generate-config: NVIDIA's generated configs (mig-facts 2.7) for single-model and mixed nodes, and the default."""

from __future__ import annotations

import pytest

from mig_manager.catalog import default_catalog
from mig_manager.errors import PlanError
from mig_manager.planner import (
    NodeGpu,
    device_types_of_models,
    device_types_of_node,
    generate_config,
    plan_node,
)
from mig_manager.spec import MigConfigEntry, MigPartedSpec, PciId, dump_spec, load_spec
from mig_manager.spec import parse_profile_name as parse

CATALOG = default_catalog()


def node_of(*aliases: str) -> list[NodeGpu]:
    gpus = []
    for alias in aliases:
        model = CATALOG.lookup(alias)
        gpus.append(NodeGpu(len(gpus), model.pci_id, model.table, model.product_name))
    return gpus


def summary(entries: tuple[MigConfigEntry, ...]) -> list[tuple[object, bool, dict[str, int] | None]]:
    return [
        (e.device_filter, e.mig_enabled, dict(e.mig_devices) if e.mig_devices is not None else None) for e in entries
    ]


@pytest.mark.parametrize(
    ("alias", "names", "balanced"),
    [
        (
            "A100-40GB",
            ["all-1g.5gb", "all-1g.5gb.me", "all-1g.10gb", "all-2g.10gb", "all-3g.20gb", "all-4g.20gb", "all-7g.40gb"],
            {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
        ),
        (
            "H100-80GB",
            [
                "all-1g.10gb",
                "all-1g.10gb.me",
                "all-1g.20gb",
                "all-2g.20gb",
                "all-3g.40gb",
                "all-4g.40gb",
                "all-7g.80gb",
            ],
            {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
        ),
        (
            "B200",
            [
                "all-1g.23gb",
                "all-1g.23gb.me",
                "all-1g.45gb",
                "all-2g.45gb",
                "all-3g.90gb",
                "all-4g.90gb",
                "all-7g.180gb",
            ],
            {"1g.23gb": 2, "2g.45gb": 1, "3g.90gb": 1},
        ),
        (
            "A30",
            ["all-1g.6gb", "all-1g.6gb.me", "all-2g.12gb", "all-2g.12gb.me", "all-4g.24gb"],
            {"1g.6gb": 2, "2g.12gb": 1},
        ),
        (
            "RTX-PRO-6000",
            [
                "all-1g.24gb",
                "all-1g.24gb.gfx",
                "all-1g.24gb.me",
                "all-1g.24gb-me",
                "all-1g.24gb.me.all",
                "all-2g.48gb",
                "all-2g.48gb.gfx",
                "all-2g.48gb-me",
                "all-2g.48gb.me.all",
                "all-4g.96gb",
                "all-4g.96gb.gfx",
            ],
            {"1g.24gb": 2, "2g.48gb": 1},
        ),
    ],
)
def test_single_model_node(alias: str, names: list[str], balanced: dict[str, int]) -> None:
    gpus = node_of(*[alias] * 4)
    spec = generate_config(device_types_of_node(gpus))
    assert list(spec.mig_configs) == ["all-disabled", "all-enabled", *names, "all-balanced"]
    assert summary(spec.mig_configs["all-disabled"]) == [(None, False, None)]
    assert summary(spec.mig_configs["all-enabled"]) == [(None, True, {})]
    assert summary(spec.mig_configs["all-balanced"]) == [(None, True, balanced)]
    table = CATALOG.lookup(alias).table
    for profile in table.gpu_instance_profiles:
        entries = spec.mig_configs[f"all-{str(profile.name).replace('+', '.')}"]
        assert summary(entries) == [(None, True, {str(profile.name): profile.max_count})]
    for name in spec.mig_configs:  # every generated config fits the node it was generated for
        assert plan_node(spec, name, gpus).ok, name


def test_mixed_a100_80gb_and_h100_80gb_share_names_and_counts() -> None:
    spec = generate_config(device_types_of_node(node_of("A100-80GB", "A100-80GB", "H100-80GB", "H100-80GB")))
    both = ("0x20B210DE", "0x233010DE")
    assert summary(spec.mig_configs["all-disabled"]) == [(both, False, None)]
    assert summary(spec.mig_configs["all-1g.10gb"]) == [(both, True, {"1g.10gb": 7})]
    assert summary(spec.mig_configs["all-1g.20gb"]) == [(both, True, {"1g.20gb": 4})]
    assert summary(spec.mig_configs["all-balanced"]) == [(both, True, {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1})]


def test_mixed_a100_80gb_and_a30_get_one_filtered_entry_per_type() -> None:
    gpus = node_of("A100-80GB", "A30", "A30")
    spec = generate_config(device_types_of_node(gpus))
    a100, a30 = ("0x20B210DE",), ("0x20B710DE",)
    assert summary(spec.mig_configs["all-enabled"]) == [(a100 + a30, True, {})]
    assert summary(spec.mig_configs["all-1g.10gb"]) == [(a100, True, {"1g.10gb": 7})]
    assert summary(spec.mig_configs["all-1g.6gb"]) == [(a30, True, {"1g.6gb": 4})]
    assert summary(spec.mig_configs["all-balanced"]) == [
        (a100, True, {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}),
        (a30, True, {"1g.6gb": 2, "2g.12gb": 1}),
    ]
    for name in spec.mig_configs:
        result = plan_node(spec, name, gpus)
        assert result.ok, name
        entries = spec.mig_configs[name]
        wanted = {k for e in entries for k in (e.mig_devices or {})}
        lacking = {
            g.index for g in gpus for k in wanted if g.table is not None and g.table.gi_profile(parse(k)) is None
        }
        assert {g.index for g in result.untouched} == (lacking if name != "all-balanced" else set()), name


def test_same_name_with_different_counts_gets_one_entry_per_count() -> None:
    spec = generate_config(device_types_of_node(node_of("A100-40GB", "A100-80GB")))
    assert summary(spec.mig_configs["all-1g.10gb"]) == [
        (("0x20B010DE",), True, {"1g.10gb": 4}),
        (("0x20B210DE",), True, {"1g.10gb": 7}),
    ]


def test_non_mig_gpus_are_ignored_and_no_mig_gpus_is_an_error() -> None:
    t4 = NodeGpu(1, PciId(0x1EB8, 0x10DE), None, "Tesla T4")
    spec = generate_config(device_types_of_node([*node_of("H100-80GB"), t4]))
    assert summary(spec.mig_configs["all-balanced"])[0][0] is None  # one MIG type: no filters
    with pytest.raises(PlanError, match="no MIG-capable devices"):
        generate_config(device_types_of_node([t4]))


def test_default_config_covers_every_catalog_model_with_filters() -> None:
    spec = generate_config(device_types_of_models(CATALOG.models), force_filters=True)
    assert all(e.device_filter for entries in spec.mig_configs.values() for e in entries)
    balanced = spec.mig_configs["all-balanced"]
    h100_family = next(e for e in balanced if "0x233010DE" in e.filters())
    assert "0x20B210DE" in h100_family.filters()  # A100-80GB shares H100-80GB's balanced geometry
    assert dict(h100_family.mig_devices or {}) == {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert {"0x20B710DE", "0x2BB510DE"} <= {f for e in balanced for f in e.filters()}
    for model in CATALOG.models:
        gpus = [NodeGpu(i, model.pci_id, model.table, model.product_name) for i in range(8)]
        for name in ("all-disabled", "all-enabled", "all-balanced"):
            result = plan_node(spec, name, gpus)
            assert result.ok and not result.untouched, (model.key, name)


def test_generated_config_round_trips_through_yaml_and_json() -> None:
    spec = generate_config(device_types_of_node(node_of("A100-80GB", "A30")))
    for fmt in ("yaml", "json"):
        again = load_spec(dump_spec(spec, fmt)).spec  # type: ignore[arg-type]
        assert isinstance(again, MigPartedSpec)
        assert {k: summary(v) for k, v in again.mig_configs.items()} == {
            k: summary(v) for k, v in spec.mig_configs.items()
        }
