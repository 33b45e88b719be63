"""The simulated backend's MIG mode, reset, reboot and process semantics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mig_manager.catalog import Placement
from mig_manager.devices import MigMode, MigModeState, NvmlCode, ResetError
from mig_manager.devices.simulated import SimulatedBackend, read_state, reboot

MakeHost = Callable[..., SimulatedBackend]
DISABLED, ENABLED = MigMode.DISABLED, MigMode.ENABLED
PENDING_ENABLE = MigModeState(DISABLED, ENABLED)
ON = MigModeState(ENABLED, ENABLED)
OFF = MigModeState(DISABLED, DISABLED)


def _fill(backend: SimulatedBackend, index: int = 0) -> None:
    """One 7g instance with its compute instance (7-slice GPUs)."""
    gi = backend.create_gpu_instance(index, 0, Placement(0, 8))
    backend.create_compute_instance(index, gi.id, 4, Placement(0, 7))


def test_ampere_stays_pending_until_reset(make_host: MakeHost) -> None:
    backend = make_host("A100-40GBx2")
    assert backend.mig_mode(0) == OFF
    assert backend.set_mig_mode(0, ENABLED) is NvmlCode.RESET_REQUIRED
    assert backend.mig_mode(0) == PENDING_ENABLE
    assert backend.mig_mode(0).change_pending
    backend.reset([0])
    assert backend.mig_mode(0) == ON
    assert backend.mig_mode(1) == OFF
    assert read_state(backend.path)["counters"]["resets"] == 1


def test_hopper_applies_at_once(make_host: MakeHost) -> None:
    backend = make_host("H100")
    assert backend.set_mig_mode(0, ENABLED) is NvmlCode.SUCCESS
    assert backend.mig_mode(0) == ON
    assert backend.set_mig_mode(0, ENABLED) is NvmlCode.SUCCESS  # already there


def test_cancelling_a_pending_change(make_host: MakeHost) -> None:
    backend = make_host("A100-40GB")
    backend.set_mig_mode(0, ENABLED)
    assert backend.set_mig_mode(0, DISABLED) is NvmlCode.SUCCESS
    assert backend.mig_mode(0) == OFF


@pytest.mark.parametrize("model", ["A100-40GB", "H100"])
def test_processes_keep_the_change_pending_and_block_reset(make_host: MakeHost, model: str) -> None:
    backend = make_host(f"{model}x2")
    backend.add_process(0, 4242)
    backend.add_process(0, 4242)  # idempotent
    assert backend.processes(0) == [4242] and backend.processes(1) == []
    assert backend.set_mig_mode(0, ENABLED) is NvmlCode.IN_USE
    assert backend.mig_mode(0) == PENDING_ENABLE
    with pytest.raises(ResetError) as exc:
        backend.reset([1, 0])
    assert exc.value.code is NvmlCode.IN_USE and exc.value.gpu == 0
    assert "4242" in str(exc.value)
    backend.remove_process(0, 4242)
    if model == "H100":  # Hopper: applies once the GPU is free
        assert backend.mig_mode(0) == ON
    else:  # Ampere: still needs the reset
        assert backend.mig_mode(0) == PENDING_ENABLE
        backend.reset([0, 1])
        assert backend.mig_mode(0) == ON


@pytest.mark.parametrize("model", ["A100-40GB", "H100"])
def test_passthrough_needs_a_reboot(make_host: MakeHost, model: str) -> None:
    backend = make_host(f"{model}x2", reboot_required_for_mode_change=True)
    assert backend.set_mig_mode(0, ENABLED) is NvmlCode.RESET_REQUIRED
    assert backend.mig_mode(0) == PENDING_ENABLE
    with pytest.raises(ResetError) as exc:
        backend.reset([0])
    assert exc.value.code is NvmlCode.RESET_REQUIRED and exc.value.op == "reset"
    assert backend.mig_mode(0) == PENDING_ENABLE
    backend.add_process(0, 1)
    backend.remove_process(0, 1)
    assert backend.mig_mode(0) == PENDING_ENABLE
    reboot(backend.path)
    assert backend.mig_mode(0) == ON and backend.mig_mode(1) == OFF


def test_one_gpu_flagged_for_reboot(make_host: MakeHost) -> None:
    backend = make_host("H100x2")
    backend.set_reboot_required(1)
    assert backend.set_mig_mode(0, ENABLED) is NvmlCode.SUCCESS
    assert backend.set_mig_mode(1, ENABLED) is NvmlCode.RESET_REQUIRED
    backend.set_reboot_required(1, False)
    backend.reset([1])
    assert backend.mig_mode(1) == ON


def test_disable_destroys_instances_when_it_applies(make_host: MakeHost) -> None:
    backend = make_host("H100", mig_enabled=True)
    _fill(backend)
    assert backend.set_mig_mode(0, DISABLED) is NvmlCode.SUCCESS
    assert backend.mig_mode(0) == OFF
    backend.set_mig_mode(0, ENABLED)
    assert backend.gpu_instances(0) == []


def test_pending_disable_keeps_instances_until_reset(make_host: MakeHost) -> None:
    backend = make_host("A100-40GB", mig_enabled=True)
    _fill(backend)
    assert backend.set_mig_mode(0, DISABLED) is NvmlCode.RESET_REQUIRED
    assert len(backend.gpu_instances(0)) == 1  # current mode is still enabled
    backend.reset([0])
    assert backend.mig_mode(0) == OFF
    assert read_state(backend.path)["gpus"][0]["gpu_instances"] == []


def test_reset_loses_instances(make_host: MakeHost) -> None:
    backend = make_host("H100x2", mig_enabled=True)
    _fill(backend, 0)
    _fill(backend, 1)
    backend.reset([0])
    assert backend.gpu_instances(0) == []
    assert len(backend.gpu_instances(1)) == 1
    assert backend.mig_mode(0) == ON  # the mode itself survives


def test_reboot_clears_instances_and_processes(make_host: MakeHost) -> None:
    backend = make_host("A100-40GBx2", mig_enabled=True)
    _fill(backend, 0)
    backend.add_process(1, 99)
    backend.set_mig_mode(1, DISABLED)
    backend.reboot()
    assert backend.gpu_instances(0) == []
    assert backend.processes(1) == []
    assert backend.mig_mode(1) == OFF
    assert read_state(backend.path)["counters"]["reboots"] == 1


def test_host_operations_are_not_backend_calls(make_host: MakeHost) -> None:
    backend = make_host("H100")
    backend.add_process(0, 1)
    backend.remove_process(0, 1)
    backend.reboot()
    assert backend.calls == []
    backend.mig_mode(0)
    assert backend.calls == ["mig_mode"]
