"""Acceptance 3: the agent is killed at each phase boundary and restarted; every run ends with the gates restored,
the host services running and the state `success` or `failed`, using the journal on the Node."""

from __future__ import annotations

import json

import pytest
from agent_support import (
    DEFAULT_GATES,
    FakeDaemonSets,
    ThreadAgent,
    annotations_of,
    events_of,
    labels_of,
    reason_of,
    run_process,
    set_labels,
    wait_state,
)

from kubesim.testing import wait_for
from mig_manager.agent.agent import CRASH_EXIT_CODE
from mig_manager.agent.journal import decode
from mig_manager.agent.labels import JOURNAL_ANNOTATION, PAUSED, STATE_LABEL
from mig_manager.devices.simulated import SimulatedBackend, read_state
from mig_manager.devices.simulated_host import read_host_services
from mig_manager.parted import assert_config
from mig_manager.spec import load_spec_file

POINTS = ["paused", "pods-gone", "services-stopped", "applying", "applied", "services-started", "finished"]
RUNNING = ("nvsm.service", "nvidia-dcgm.service", "kubelet.service", "failed.service")


def _crash(gpu_node, point: str) -> None:  # type: ignore[no-untyped-def]
    proc = run_process(gpu_node, MIG_MANAGER_CRASH_AT=point)
    assert proc.returncode == CRASH_EXIT_CODE, proc.stderr[-3000:]
    assert f"MIG_MANAGER_CRASH_AT={point}" in proc.stderr


def _applied(gpu_node, config: str) -> bool:  # type: ignore[no-untyped-def]
    spec = load_spec_file(str(gpu_node.config)).spec
    return assert_config(SimulatedBackend(gpu_node.gpu_state), spec, config).ok


def _services_running(gpu_node) -> bool:  # type: ignore[no-untyped-def]
    units = read_host_services(gpu_node.services)["units"]
    return all(units[u]["active"] == "active" for u in RUNNING)


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_each_phase_boundary_then_restarted(kubesim, core, gpu_node, point: str) -> None:  # type: ignore[no-untyped-def]
    gpu_node.configure(with_shutdown_host_gpu_clients=True)
    set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
    with FakeDaemonSets(kubesim):
        _crash(gpu_node, point)
        labels = labels_of(core)
        if point == "finished":
            assert labels[STATE_LABEL] == "success"
        else:
            # Killed mid-run: the journal says where; the gates are paused and the state is pending.
            assert labels[STATE_LABEL] == "pending"
            assert all(labels[k] == PAUSED for k in DEFAULT_GATES)
            journal = decode(annotations_of(core)[JOURNAL_ANNOTATION])
            assert journal.target == "all-balanced"
            assert journal.gates["nvidia.com/gpu.deploy.device-plugin"] == "true"
        with ThreadAgent(gpu_node):
            labels = wait_state(core, "success", config="all-balanced")
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert labels["nvidia.com/gpu.deploy.nvsm"] == "true"
    assert JOURNAL_ANNOTATION not in annotations_of(core)
    assert _applied(gpu_node, "all-balanced")
    assert _services_running(gpu_node)


def test_killed_then_the_label_changes_the_restart_finishes_at_the_new_config(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
    with FakeDaemonSets(kubesim):
        _crash(gpu_node, "applied")
        set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
        with ThreadAgent(gpu_node):
            labels = wait_state(core, "success", config="all-1g.10gb")
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert _applied(gpu_node, "all-1g.10gb")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"nvidia.com/mig.config": None}, "label was removed while applying 'all-balanced'"),
        ({"nvidia.com/mig.config": "no-such-config"}, 'selected mig-config not present: "no-such-config"'),
    ],
    ids=["label-removed", "label-invalid"],
)
def test_killed_then_the_label_goes_bad_the_restart_undoes_the_work(
    kubesim, core, gpu_node, change: dict[str, str | None], reason: str
) -> None:  # type: ignore[no-untyped-def]
    before = read_state(gpu_node.gpu_state)["gpus"]
    set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
    with FakeDaemonSets(kubesim):
        _crash(gpu_node, "applied")
        assert read_state(gpu_node.gpu_state)["gpus"] != before  # the GPUs were changed before the crash
        set_labels(core, change)
        with ThreadAgent(gpu_node):
            labels = wait_state(core, "failed")
    assert reason in reason_of(core)
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    after = read_state(gpu_node.gpu_state)["gpus"]
    assert [g["mig_mode"] for g in after] == [g["mig_mode"] for g in before]
    assert [g["gpu_instances"] for g in after] == [g["gpu_instances"] for g in before]


def test_an_unreadable_journal_restores_the_gates_then_the_config_is_applied(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    set_labels(
        core, {"nvidia.com/mig.config": "all-balanced", STATE_LABEL: "pending", **dict.fromkeys(DEFAULT_GATES, PAUSED)}
    )
    core.patch_node(
        "gpu-node-1",
        {"metadata": {"annotations": {JOURNAL_ANNOTATION: json.dumps({"version": "v9"})}}},
        _content_type="application/merge-patch+json",
    )
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        labels = wait_state(core, "success", config="all-balanced")
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    failed = [m for t, r, m in events_of(core) if r == "MigConfigFailed"]
    assert len(failed) == 1 and "journal annotation: version 'v9' is not supported" in failed[0]


def test_sigterm_in_the_middle_of_a_run_restores_everything(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """A pod being stopped (rollout, node drain) while it waits for the GPU clients' pods: the run is ended with the
    host services started again, the gates restored and the state `failed`; the next agent applies the config."""
    from agent_support import ProcessAgent

    gpu_node.configure(with_shutdown_host_gpu_clients=True)
    with FakeDaemonSets(kubesim, stuck=True) as daemonsets:
        with ProcessAgent(gpu_node) as agent:
            set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
            wait_for(lambda: labels_of(core).get(STATE_LABEL) == "pending", timeout=30, what="pending")
            assert agent.proc is not None
            agent.proc.terminate()
            assert agent.proc.wait(30) == 0
        labels = labels_of(core)
        assert labels[STATE_LABEL] == "failed" and "the agent is stopping" in reason_of(core)
        assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
        assert JOURNAL_ANNOTATION not in annotations_of(core)
        daemonsets.stuck = False
        with ThreadAgent(gpu_node):
            wait_state(core, "success", config="all-balanced")
    assert _services_running(gpu_node)
