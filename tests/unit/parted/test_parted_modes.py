"""Acceptance 3 and apply semantics: mode changes (reset required, reset, reboot required, in use), GPUs left alone,
planning before touching, and assert's per-GPU report."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import pytest
from parted_support import fresh, generated, mutations, spec

from mig_manager.catalog import ProfileTable
from mig_manager.devices.base import MigMode, MigModeState
from mig_manager.devices.simulated import SimulatedBackend
from mig_manager.parted import (
    APPLIED_MESSAGE,
    ASSERT_MODE_OK_MESSAGE,
    ASSERT_OK_MESSAGE,
    Outcome,
    apply_config,
    assert_config,
    fetch_state,
)

A100 = "A100-40GBx2"  # Ampere: a mode change stays pending until a GPU reset
H100 = "H100x2"  # Hopper: a mode change applies at once unless the GPU is in use


def test_reset_required_when_resets_are_skipped_then_success_after_a_reset(
    make_host: Callable[..., SimulatedBackend],
) -> None:
    backend = make_host(A100)
    configs = generated(A100)
    result = apply_config(backend, configs, "all-balanced", skip_reset=True)
    assert result.outcome == Outcome.RESET_REQUIRED
    assert "reset required" in result.message and "NOT applied" in result.message
    assert result.details[0] == (
        "GPU 0 (A100-SXM4-40GB): MIG mode change to enabled is pending: reset required (resets skipped by --skip-reset)"
    )
    assert "reset" not in backend.calls
    assert [fresh(backend).mig_mode(i) for i in (0, 1)] == [MigModeState(MigMode.DISABLED, MigMode.ENABLED)] * 2
    check = assert_config(fresh(backend), configs, "all-balanced", mode_only=True)
    assert not check.ok
    assert "pending" in check.mismatches()[0]

    again = fresh(backend)
    result = apply_config(again, configs, "all-balanced")
    assert result.ok, result.lines()
    assert result.message == APPLIED_MESSAGE
    assert again.calls.count("reset") == 1
    assert assert_config(fresh(backend), configs, "all-balanced").ok


def test_only_pending_gpus_are_reset(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(A100)
    both = spec(
        """
version: v1
mig-configs:
  first:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"7g.40gb": 1}
"""
    )
    assert apply_config(backend, both, "first").ok
    state = fetch_state(fresh(backend))
    assert [d.mode for d in state.devices] == [MigMode.ENABLED, MigMode.DISABLED]


def test_hopper_mode_change_needs_no_reset(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    result = apply_config(backend, generated(H100), "all-balanced", skip_reset=True)
    assert result.ok, result.lines()
    assert "reset" not in backend.calls


def test_reboot_required_when_the_gpu_is_flagged(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(A100, reboot_required_for_mode_change=True)
    configs = generated(A100)
    result = apply_config(backend, configs, "all-balanced")
    assert result.outcome == Outcome.REBOOT_REQUIRED
    assert "reboot required" in result.message
    assert all("reboot required" in line for line in result.details)
    # The pending change is kept: a reboot applies it, and the next apply finishes the job.
    backend.reboot()
    result = apply_config(fresh(backend), configs, "all-balanced")
    assert result.ok, result.lines()
    assert assert_config(fresh(backend), configs, "all-balanced").ok


def test_reboot_required_on_hopper_too(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100, reboot_required_for_mode_change=True)
    result = apply_config(backend, generated(H100), "all-enabled")
    assert result.outcome == Outcome.REBOOT_REQUIRED


def test_in_use_while_a_process_holds_the_gpu(make_host: Callable[..., SimulatedBackend]) -> None:
    for gpus in (A100, H100):
        backend = make_host(gpus)
        configs = generated(gpus)
        backend.add_process(1, 4242)
        result = apply_config(backend, configs, "all-balanced")
        assert result.outcome == Outcome.IN_USE, result.lines()
        assert "in use" in result.message
        assert any("in use by processes 4242" in line for line in result.details), result.details
        assert not assert_config(fresh(backend), configs, "all-balanced", mode_only=True).ok
        backend.remove_process(1, 4242)
        result = apply_config(fresh(backend), configs, "all-balanced")
        assert result.ok, result.lines()
        assert assert_config(fresh(backend), configs, "all-balanced").ok


def test_skip_reset_with_a_process_reports_reset_required(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    backend.add_process(0, 7)
    result = apply_config(backend, generated(H100), "all-enabled", skip_reset=True)
    assert result.outcome == Outcome.RESET_REQUIRED


def test_gpus_whose_mode_matches_are_not_wiped(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x3")
    configs = generated("H100x3")
    assert apply_config(backend, configs, "all-balanced").ok
    mixed = spec(
        """
version: v1
mig-configs:
  mixed:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    - devices: [2]
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
"""
    )
    before = fetch_state(fresh(backend))
    again = fresh(backend)
    result = apply_config(again, mixed, "mixed")
    assert result.ok
    assert "set_mig_mode" not in again.calls
    after = fetch_state(fresh(backend))
    assert after.devices[:2] == before.devices[:2]  # untouched, same instances at the same placements
    assert [g.status for g in result.gpus] == ["unchanged", "unchanged", "configured"]


def test_disabling_destroys_instances_first(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    configs = generated(H100)
    assert apply_config(backend, configs, "all-balanced").ok
    again = fresh(backend)
    assert apply_config(again, configs, "all-disabled").ok
    ops = mutations(again)
    assert ops.index("set_mig_mode") > ops.index("destroy_gpu_instance")
    assert ops[:2] == ["destroy_compute_instance", "destroy_gpu_instance"]
    assert assert_config(fresh(backend), configs, "all-disabled").ok


def test_mode_only_leaves_instances_alone(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    configs = generated(H100)
    result = apply_config(backend, configs, "all-balanced", mode_only=True)
    assert result.ok
    assert "create_gpu_instance" not in backend.calls
    assert assert_config(fresh(backend), configs, "all-balanced", mode_only=True).message == ASSERT_MODE_OK_MESSAGE
    assert not assert_config(fresh(backend), configs, "all-balanced").ok


def test_a_pending_change_back_to_the_current_mode_is_cancelled(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(A100)
    configs = generated(A100)
    assert apply_config(backend, configs, "all-enabled", skip_reset=True).outcome == Outcome.RESET_REQUIRED
    check = assert_config(fresh(backend), configs, "all-disabled")
    assert not check.ok
    assert "a change to enabled is pending" in check.mismatches()[0]
    result = apply_config(fresh(backend), configs, "all-disabled", skip_reset=True)
    assert result.ok
    assert assert_config(fresh(backend), configs, "all-disabled").ok


# ---------------------------------------------------------------------------------------------------------------------
# Planning before touching


def test_unknown_profile_fails_before_any_gpu_is_touched(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    bad = spec(
        """
version: v1
mig-configs:
  bad:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
    - devices: [1]
      mig-enabled: true
      mig-devices: {"1g.5gb": 7}
"""
    )
    result = apply_config(backend, bad, "bad")
    assert result.outcome == Outcome.FAILED
    assert result.message == "config 'bad' cannot be applied; no GPU was touched"
    assert result.details[0].startswith("GPU 1 (H100-SXM5-80GB): profile 1g.5gb")
    assert mutations(backend) == []


def test_impossible_geometry_and_mig_on_a_gpu_without_mig(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x1,0x1EB810DE")  # an H100 and a GPU without MIG
    bad = spec(
        """
version: v1
mig-configs:
  impossible:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"2g.20gb": 3, "1g.10gb": 2}
  no-mig:
    - devices: [1]
      mig-enabled: true
      mig-devices: {}
  all:
    - devices: all
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
"""
    )
    result = apply_config(backend, bad, "impossible")
    assert result.outcome == Outcome.FAILED
    assert "cannot be placed" in result.details[0] or "do not fit" in result.details[0], result.details
    result = apply_config(backend, bad, "no-mig")
    assert result.outcome == Outcome.FAILED
    assert "is not MIG-capable" in result.details[0]
    assert mutations(backend) == []
    # `devices: all` skips the GPU without MIG, as NVIDIA does; assert does not count it.
    assert apply_config(fresh(backend), bad, "all").ok
    check = assert_config(fresh(backend), bad, "all")
    assert check.ok
    assert [(g.index, g.selected) for g in check.gpus] == [(0, True), (1, False)]


# ---------------------------------------------------------------------------------------------------------------------
# assert


def test_assert_reports_each_gpu_and_ignores_unselected_gpus(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    configs = generated(H100)
    assert apply_config(backend, configs, "all-1g.10gb").ok
    partial = spec(
        """
version: v1
mig-configs:
  first:
    - devices: [0]
      mig-enabled: true
      mig-devices: {"1c.1g.10gb": 7, "3g.40gb": 0}
  second:
    - devices: [1]
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
"""
    )
    check = assert_config(fresh(backend), partial, "first")
    assert check.ok and check.message == ASSERT_OK_MESSAGE  # canonical names, zero counts dropped
    assert [(g.index, g.selected, g.matched) for g in check.gpus] == [(0, True, True), (1, False, True)]
    check = assert_config(fresh(backend), partial, "second")
    assert not check.ok
    assert check.mismatches() == ["GPU 1 (H100-SXM5-80GB): has {1g.10gb: 7}, the config wants {7g.80gb: 1}"]
    # Applying "second" leaves GPU 0 alone.
    before = fetch_state(fresh(backend)).devices[0]
    assert apply_config(fresh(backend), partial, "second").ok
    assert fetch_state(fresh(backend)).devices[0] == before


def test_assert_mode_mismatch_reason(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host(H100)
    check = assert_config(backend, generated(H100), "all-balanced")
    assert check.mismatches()[0] == "GPU 0 (H100-SXM5-80GB): MIG mode is disabled, the config wants it enabled"


# ---------------------------------------------------------------------------------------------------------------------
# The device's profile table wins; differences from the catalog are logged


class _DeviceReportsFewer1g:
    """A backend whose device reports a lower max count for 1g.10gb than the catalog (delegates everything else)."""

    def __init__(self, inner: SimulatedBackend) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def profile_table(self, index: int) -> ProfileTable:
        table = self.inner.profile_table(index)
        profiles = tuple(
            dataclasses.replace(p, max_count=4) if str(p.name) == "1g.10gb" else p for p in table.gpu_instance_profiles
        )
        return dataclasses.replace(table, gpu_instance_profiles=profiles)


def test_device_table_wins_and_differences_are_logged(
    make_host: Callable[..., SimulatedBackend], caplog: pytest.LogCaptureFixture
) -> None:
    backend = _DeviceReportsFewer1g(make_host(H100))
    configs = generated(H100)
    with caplog.at_level(logging.INFO, logger="mig_manager.parted"):
        assert apply_config(backend, configs, "all-balanced").ok  # type: ignore[arg-type]
    assert "GPU 0 (H100-SXM5-80GB): device profile table differs from the catalog: profile ID 19 (1g.10gb): " in (
        caplog.text
    )
    result = apply_config(backend, configs, "all-1g.10gb")  # type: ignore[arg-type]
    assert result.outcome == Outcome.FAILED
    assert "allows at most 4" in result.details[0]
