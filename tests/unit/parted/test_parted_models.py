"""Acceptance 1: on a simulated 2-GPU node of every catalog model, every generated config applies and then asserts;
export gives back an equivalent config; checkpoint, clear and restore give the identical state, placements included."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from parted_support import fresh, generated, mutations

from mig_manager.catalog import default_catalog
from mig_manager.devices.base import MigMode
from mig_manager.devices.simulated import SimulatedBackend
from mig_manager.parted import (
    Outcome,
    apply_config,
    assert_config,
    discover,
    export_config,
    fetch_state,
    restore_state,
)
from mig_manager.planner import plan_node
from mig_manager.spec import MigPartedSpec, dump_spec, load_spec

MODELS = [m.key for m in default_catalog().models]


def _desired(spec: MigPartedSpec, config: str, backend: SimulatedBackend) -> dict[int, tuple[bool, dict[str, int]]]:
    """Per GPU: MIG enabled and the canonical instance counts a config asks for."""
    result = plan_node(spec, config, [g.node for g in discover(backend)])
    assert result.ok, result
    return {d.gpu.index: (d.mig_enabled, d.plan.devices() if d.plan else {}) for d in result.gpus}


@pytest.mark.parametrize("model", MODELS)
def test_every_generated_config_applies_asserts_exports_and_restores(
    model: str, make_host: Callable[..., SimulatedBackend]
) -> None:
    backend = make_host(f"{model}x2")
    configs = generated(f"{model}x2")
    for name in configs.mig_configs:
        result = apply_config(backend, configs, name)
        assert result.outcome == Outcome.SUCCESS, (name, result.lines())
        checked = assert_config(fresh(backend), configs, name)
        assert checked.ok, (name, checked.mismatches())

        # Applying again changes nothing.
        again = fresh(backend)
        assert apply_config(again, configs, name).ok
        assert mutations(again) == [], name

        # Export: one config that asks each GPU for exactly what it has.
        exported = load_spec(dump_spec(export_config(fresh(backend), "current"))).spec
        assert _desired(exported, "current", backend) == _desired(configs, name, backend), name
        assert assert_config(fresh(backend), exported, "current").ok

        # Checkpoint, clear (MIG on, no instances), restore: the identical state, placements included.
        saved = fetch_state(fresh(backend))
        assert apply_config(fresh(backend), configs, "all-enabled").ok
        restored = restore_state(fresh(backend), saved)
        assert restored.ok, (name, restored.lines())
        assert fetch_state(fresh(backend)) == saved, name


@pytest.mark.parametrize("model", ["A100-SXM4-40GB", "H100-SXM5-80GB", "B200-180GB"])
def test_restore_from_mig_disabled_brings_back_mode_and_placements(
    model: str, make_host: Callable[..., SimulatedBackend]
) -> None:
    backend = make_host(f"{model}x2")
    configs = generated(f"{model}x2")
    assert apply_config(backend, configs, "all-balanced").ok
    saved = fetch_state(fresh(backend))
    assert all(d.mode == MigMode.ENABLED and d.gpu_instances for d in saved.devices)
    assert apply_config(fresh(backend), configs, "all-disabled").ok
    assert fetch_state(fresh(backend)) != saved
    result = restore_state(fresh(backend), saved)
    assert result.ok, result.lines()
    assert fetch_state(fresh(backend)) == saved
    # Restoring again is a no-op.
    again = fresh(backend)
    assert restore_state(again, saved).ok
    assert mutations(again) == []


def test_mixed_node_export_keeps_device_filters(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("A100-40GBx2,H100x2")
    configs = generated("A100-40GBx2,H100x2")
    assert apply_config(backend, configs, "all-balanced").ok
    exported = export_config(fresh(backend), "mine")
    entries = exported.mig_configs["mine"]
    assert len(entries) == 2
    assert {e.device_filter for e in entries} == {"0x20B010DE", "0x233010DE"}
    assert all(e.devices == "all" for e in entries)
    assert _desired(exported, "mine", backend) == _desired(configs, "all-balanced", backend)
