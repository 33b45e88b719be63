"""The chaos test's pure parts: the invariants catch what they must, reading GPUs from the simulated state, planning."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from chaos_cluster import (
    GATES,
    JOURNAL,
    REASON,
    STATE,
    GpuSnapshot,
    NodeView,
    _tables,
    check_node,
    expected_entries,
    plan_round,
    settled,
    snapshot_gpus,
)

from mig_manager.catalog import Placement
from mig_manager.devices import simulated
from mig_manager.devices.base import MigMode

H100 = "0x233010de"
CONFIGS = {
    "all-disabled": [{"devices": "all", "mig-enabled": False}],
    "all-1g.10gb": [
        {"devices": "all", "device-filter": ["0x20B010DE"], "mig-enabled": True, "mig-devices": {"1g.5gb": 7}},
        {"devices": "all", "device-filter": ["0x233010DE"], "mig-enabled": True, "mig-devices": {"1g.10gb": 7}},
    ],
    "all-7g.80gb": [{"devices": "all", "mig-enabled": True, "mig-devices": {"7g.80gb": 1}}],
    "gpu0-only": [{"devices": [0], "mig-enabled": True, "mig-devices": {"7g.80gb": 1}}],
}


def gpu(index: int, mode: str = "disabled", *names: str) -> GpuSnapshot:
    return GpuSnapshot(index, H100, mode, mode, tuple((n, i, (n,)) for i, n in enumerate(names)))


def view(state: str, config: str, gpus: tuple[GpuSnapshot, ...], **changes: object) -> NodeView:
    labels = {STATE: state, "nvidia.com/mig.config": config, **{g: "true" for g in GATES}}
    annotations = {REASON: f"MIG config '{config}' applied"}
    units = {"nvsm.service": "active"}
    labels.update({k: v for k, v in changes.items() if k.startswith("nvidia.com/") and isinstance(v, str)})
    if "annotations" in changes:
        annotations.update(changes["annotations"])  # type: ignore[arg-type]
    if "units" in changes:
        units = dict(changes["units"])  # type: ignore[call-overload]
    return NodeView("node", labels, annotations, gpus, units)


BEFORE = view("success", "all-disabled", (gpu(0), gpu(1)))


def test_a_node_that_holds_its_config_passes() -> None:
    after = view("success", "all-7g.80gb", (gpu(0, "enabled", "7g.80gb"), gpu(1, "enabled", "7g.80gb")))
    assert check_node(after, BEFORE, CONFIGS, final=True) == []


def test_success_with_other_instances_than_the_config_is_a_violation() -> None:
    after = view("success", "all-7g.80gb", (gpu(0, "enabled", "7g.80gb"), gpu(1, "enabled")))
    [problem] = check_node(after, BEFORE, CONFIGS, final=True)
    assert "GPU 1 holds {}" in problem and "7g.80gb" in problem


def test_success_with_the_wrong_mode_is_a_violation() -> None:
    after = view("success", "all-disabled", (gpu(0, "enabled"), gpu(1)))
    assert any("MIG mode enabled/enabled" in p for p in check_node(after, BEFORE, CONFIGS, final=True))


def test_a_gpu_the_config_does_not_select_must_not_change() -> None:
    after = view("success", "gpu0-only", (gpu(0, "enabled", "7g.80gb"), gpu(1, "enabled")))
    assert check_node(after, BEFORE, CONFIGS, final=True) == ["node: GPU 1 is not selected by 'gpu0-only' but changed"]


def test_failed_must_leave_every_gpu_as_it_was() -> None:
    changed = view("failed", "all-7g.80gb", (gpu(0, "enabled", "7g.80gb"), gpu(1)))
    assert any("GPU 0 changed" in p for p in check_node(changed, BEFORE, CONFIGS, final=True))
    same = view("failed", "all-7g.80gb", (gpu(0), gpu(1)))
    assert check_node(same, BEFORE, CONFIGS, final=True) == []


def test_a_restore_that_failed_is_allowed_only_while_the_agent_retries_under_faults() -> None:
    reason = "MIG config 'all-7g.80gb': ...; restoring the previous state FAILED for some GPUs; retrying in 0.4s"
    after = view("failed", "all-7g.80gb", (gpu(0, "enabled"), gpu(1)), annotations={REASON: reason})
    assert check_node(after, BEFORE, CONFIGS, final=False) == []
    assert any("GPU 0 changed" in p for p in check_node(after, BEFORE, CONFIGS, final=True))


def test_pending_journal_paused_gates_and_stopped_units_are_violations() -> None:
    after = view(
        "pending",
        "all-disabled",
        (gpu(0), gpu(1)),
        **{"nvidia.com/gpu.deploy.device-plugin": "paused-for-mig-change"},
        annotations={JOURNAL: "{}"},
        units={"nvsm.service": "inactive"},
    )
    problems = check_node(after, BEFORE, CONFIGS, final=True)
    assert any("state 'pending'" in p for p in problems)
    assert any("still recorded in progress" in p for p in problems)
    assert any("device-plugin left paused" in p for p in problems)
    assert any("nvsm.service was active" in p for p in problems)


def test_success_for_a_config_the_file_lacks_is_a_violation() -> None:
    after = view("success", "no-such-config", (gpu(0), gpu(1)))
    assert "which the config file does not have" in check_node(after, BEFORE, CONFIGS, final=True)[0]


def test_settled_needs_a_state_about_the_current_label() -> None:
    old = view("success", "all-disabled", (gpu(0),), **{"nvidia.com/mig.config": "all-7g.80gb"})
    assert not settled(old, final=False)  # the reason still speaks of all-disabled: the agent has not started
    assert settled(view("success", "all-7g.80gb", (gpu(0),)), final=True)
    retrying = view("failed", "x", (gpu(0),), annotations={REASON: "MIG config 'x': boom; retrying in 1.0s"})
    assert settled(retrying, final=False) and not settled(retrying, final=True)
    running = view("success", "x", (gpu(0),), annotations={JOURNAL: "{}", REASON: "MIG config 'x' applied"})
    assert not settled(running, final=False)


def test_expected_entries_follow_devices_and_filters() -> None:
    gpus = (gpu(0), gpu(1))
    assert set(expected_entries(CONFIGS["gpu0-only"], gpus)) == {0}
    chosen = expected_entries(CONFIGS["all-1g.10gb"], gpus)
    assert {i: e["mig-devices"] for i, e in chosen.items()} == {0: {"1g.10gb": 7}, 1: {"1g.10gb": 7}}
    a100 = (GpuSnapshot(0, "0x20b010de", "disabled", "disabled", ()),)
    assert expected_entries(CONFIGS["all-1g.10gb"], a100)[0]["mig-devices"] == {"1g.5gb": 7}


def test_snapshot_reads_instances_from_the_simulated_state(tmp_path: Path) -> None:
    path = simulated.init_host(tmp_path / "gpus.json", "H100x2", mig_enabled=True)
    backend = simulated.SimulatedBackend(path)
    table = backend.profile_table(0)
    by_name = {str(p.name): p for p in table.gpu_instance_profiles}
    gi = backend.create_gpu_instance(0, by_name["3g.40gb"].id, Placement(4, 4))
    full = table.compute_instance_profiles[3][3]
    backend.create_compute_instance(0, gi.id, full.id, Placement(0, 3))
    gi2 = backend.create_gpu_instance(0, by_name["3g.40gb"].id, Placement(0, 4))
    backend.create_compute_instance(0, gi2.id, table.compute_instance_profiles[3][1].id, Placement(0, 1))
    backend.set_mig_mode(1, MigMode.DISABLED)
    [gpu0, gpu1] = snapshot_gpus(simulated.read_state(path), _tables())
    assert gpu0.device_id == H100 and gpu0.mode == "enabled"
    assert gpu0.instances == (("3g.40gb", 0, ("1c.3g.40gb",)), ("3g.40gb", 4, ("3g.40gb",)))
    assert gpu0.devices() == {"3g.40gb": 1, "1c.3g.40gb": 1}
    assert gpu1.mode == "disabled" and gpu1.instances == ()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plans_are_reproducible_and_cover_every_kind_of_chaos(seed: int) -> None:
    configs = {"node-h100": ["all-disabled", "all-7g.80gb"], "node-a100": ["all-disabled"], "node-a30": ["x"]}
    first = [plan_round(random.Random(seed * 1000 + i), configs) for i in range(300)]
    again = [plan_round(random.Random(seed * 1000 + i), configs) for i in range(300)]
    assert first == again
    kinds = {a.kind for plan in first for a in plan}
    assert kinds == {"label", "kill-agent", "kill-operator", "api-fault", "cut-watches", "nvml-fault"}
    for plan in first:
        labels = [a for a in plan if a.kind == "label"]
        assert 1 <= len(labels) <= 3 and all(a.value in [*configs[a.node], "no-such-config"] for a in labels)


def test_a_recorded_restore_point_allows_changed_gpus_only_while_faults_fire() -> None:
    reason = "cannot read the GPUs: GPU 0: listing GPU instances failed (TIMEOUT); retrying in 0.2s"
    after = view(
        "failed",
        "all-7g.80gb",
        (gpu(0, "enabled"), gpu(1)),
        annotations={REASON: reason, "nvidia.com/mig.config.restore": "{}"},
    )
    assert check_node(after, BEFORE, CONFIGS, final=False) == []
    assert any("GPU 0 changed" in p for p in check_node(after, BEFORE, CONFIGS, final=True))
