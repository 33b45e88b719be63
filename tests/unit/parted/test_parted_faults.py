"""Acceptance 2: a fault injected at each backend call of an apply, in turn, ends with exit code 1, a message naming
the failed step, and every GPU in its previous geometry (assert against the old config succeeds)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from parted_support import cli, fresh, generated

from mig_manager.devices.simulated import SimulatedBackend, add_fault, init_host, read_state
from mig_manager.parted import Outcome, apply_config, assert_config, fetch_state
from mig_manager.spec import dump_spec

STEP = re.compile(
    r"(listing the GPUs|reading the profile table|reading MIG mode|listing GPU instances|setting MIG mode to \w+|"
    r"resetting the GPUs?|destroying (compute instance \S+ in )?\S+ at \d+:\d+|"
    r"creating (compute instance \S+ at \d+:\d+ in )?\S+ at \d+:\d+) failed \(UNKNOWN\)"
)

# (node, config before, config to apply)
SCENARIOS = [
    ("H100x2", "all-disabled", "all-balanced"),  # mode change that applies at once, then instances
    ("H100x2", "all-1g.10gb", "all-balanced"),  # geometry change on MIG-enabled GPUs
    ("A100-40GBx2", "all-disabled", "all-balanced"),  # mode change that needs a GPU reset
    ("H100x2", "all-balanced", "all-disabled"),  # instances destroyed, then MIG disabled
]


def _host(tmp_path: Path, name: str, gpus: str, before: str) -> SimulatedBackend:
    path = tmp_path / f"{name}.json"
    init_host(path, gpus)
    backend = SimulatedBackend(path)
    result = apply_config(backend, generated(gpus), before)
    assert result.ok, result.lines()
    return SimulatedBackend(path)


@pytest.mark.parametrize(("gpus", "before", "after"), SCENARIOS)
def test_fault_at_every_call_rolls_back(tmp_path: Path, gpus: str, before: str, after: str) -> None:
    configs = generated(gpus)
    clean = _host(tmp_path, "clean", gpus, before)
    assert apply_config(clean, configs, after).ok
    calls = list(clean.calls)
    assert len(calls) > 10
    expected_state = fetch_state(_host(tmp_path, "reference", gpus, before))

    for k, op in enumerate(calls):
        backend = _host(tmp_path, f"fault{k}", gpus, before)
        add_fault(backend.path, "*", "UNKNOWN", after=k, times=1)
        result = apply_config(backend, configs, after)
        where = f"fault at call {k} ({op}): {result.lines()}"
        assert result.outcome == Outcome.FAILED, where
        assert STEP.search(result.message), where
        assert not result.rollback_errors, where
        assert read_state(backend.path)["faults"][0]["fired"] == 1, where
        check = assert_config(fresh(backend), configs, before)
        assert check.ok, (where, check.mismatches())
        state = fetch_state(fresh(backend))
        assert [d.gpu_instances for d in state.devices] == [d.gpu_instances for d in expected_state.devices], where
        assert [d.mode for d in state.devices] == [d.mode for d in expected_state.devices], where


def test_fault_through_the_cli_exits_1_and_names_the_step(tmp_path: Path) -> None:
    backend = _host(tmp_path, "cli", "H100x2", "all-1g.10gb")
    config = tmp_path / "config.yaml"
    config.write_text(dump_spec(generated("H100x2")))
    add_fault(backend.path, "create_gpu_instance", "INSUFFICIENT_RESOURCES", gpu=1, after=3)
    code, out, err = cli(
        ["apply", "-f", str(config), "-c", "all-balanced", "--backend", "simulated", "--sim-state", str(backend.path)]
    )
    assert code == 1, err
    assert out == ""
    assert (
        "GPU 1 (H100-SXM5-80GB): creating 3g.40gb at 4:4 failed (INSUFFICIENT_RESOURCES); "
        "restored the previous geometry of GPUs 0, 1 (H100-SXM5-80GB)" in err
    ), err
    code, out, err = cli(["assert", "-f", str(config), "-c", "all-1g.10gb", "--sim-state", str(backend.path)])
    assert code == 0, err
    assert out == "Selected MIG configuration currently applied\n"


def test_failure_on_one_gpu_restores_every_gpu_changed(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x3")
    configs = generated("H100x3")
    assert apply_config(backend, configs, "all-7g.80gb").ok
    before = fetch_state(fresh(backend))
    add_fault(backend.path, "create_compute_instance", "UNKNOWN", gpu=2)
    result = apply_config(fresh(backend), configs, "all-balanced")
    assert result.outcome == Outcome.FAILED
    assert result.message.startswith("GPU 2 (H100-SXM5-80GB): creating compute instance 2g.20gb at 0:2 in 2g.20gb")
    assert result.rolled_back == (0, 1, 2)
    assert [g.status for g in result.gpus] == ["restored"] * 3
    assert fetch_state(fresh(backend)) == before


def test_rollback_failure_is_reported(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x1")
    configs = generated("H100x1")
    assert apply_config(backend, configs, "all-7g.80gb").ok
    # The create fails, and so does every create of the rollback.
    add_fault(backend.path, "create_gpu_instance", "UNKNOWN", after=1, times=-1)
    result = apply_config(fresh(backend), configs, "all-balanced")
    assert result.outcome == Outcome.FAILED
    assert "restoring the previous state FAILED" in result.message
    assert result.rollback_errors and "creating 7g.80gb at 0:8 failed (UNKNOWN)" in result.rollback_errors[0]
