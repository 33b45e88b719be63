"""Acceptance 5: a MIG mode change that needs a reboot. With WITH_REBOOT the node reaches `success` after exactly one
reboot; a mode that still does not take ends `failed` after that one reboot; without WITH_REBOOT it fails at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_support import (
    DEFAULT_GATES,
    FakeDaemonSets,
    Node,
    ThreadAgent,
    annotations_of,
    events_of,
    labels_of,
    reason_of,
    run_process,
    set_labels,
    wait_state,
)

from mig_manager.agent.agent import CRASH_EXIT_CODE
from mig_manager.agent.journal import decode
from mig_manager.agent.labels import JOURNAL_ANNOTATION, STATE_LABEL
from mig_manager.devices.simulated import SimulatedBackend, _transaction, read_state
from mig_manager.devices.simulated_host import read_host_services
from mig_manager.parted import assert_config
from mig_manager.spec import load_spec_file


def _reboots(node: Node) -> int:
    count: int = read_state(node.gpu_state)["counters"]["reboots"]
    return count


def _modes(node: Node) -> list[dict[str, str]]:
    return [g["mig_mode"] for g in read_state(node.gpu_state)["gpus"]]


def _mode_did_not_take(path: Path) -> None:
    def change(state: dict[str, Any]) -> None:
        for gpu in state["gpus"]:
            gpu["mig_mode"] = {"current": "disabled", "pending": "disabled"}

    _transaction(path, change)


def _first_run_reboots(kubesim, core, node: Node) -> None:  # type: ignore[no-untyped-def]
    with ThreadAgent(node) as runner:
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        assert runner.wait_exit(60) == "rebooted"
    labels = labels_of(core)
    assert labels[STATE_LABEL] == "rebooting"
    journal = decode(annotations_of(core)[JOURNAL_ANNOTATION])
    assert journal.reboot is not None and journal.reboot.config == "all-balanced"
    assert _reboots(node) == 1
    assert "rebooting the node" in reason_of(core)


def test_with_reboot_reaches_success_after_exactly_one_reboot(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.init(reboot_required=True)
    gpu_node.configure(with_reboot=True, with_shutdown_host_gpu_clients=True)
    with FakeDaemonSets(kubesim):
        _first_run_reboots(kubesim, core, gpu_node)
        with ThreadAgent(gpu_node):  # the pod starts again after the reboot
            labels = wait_state(core, "success", config="all-balanced")
    assert _reboots(gpu_node) == 1
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    spec = load_spec_file(str(gpu_node.config)).spec
    assert assert_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-balanced").ok
    reasons = sorted(r for _, r, _ in events_of(core))
    assert reasons.count("MigConfigRebooting") == 1 and "MigConfigApplied" in reasons
    units = read_host_services(gpu_node.services)["units"]
    assert all(units[u]["active"] == "active" for u in ("nvsm.service", "kubelet.service"))


def test_a_mode_that_still_does_not_take_fails_after_that_one_reboot(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.init(reboot_required=True)
    gpu_node.configure(with_reboot=True)
    with FakeDaemonSets(kubesim):
        _first_run_reboots(kubesim, core, gpu_node)
        _mode_did_not_take(gpu_node.gpu_state)
        with ThreadAgent(gpu_node) as runner:
            labels = wait_state(core, "failed")
            assert runner.thread.is_alive()  # no second reboot
    assert "MIG mode change did not take effect after rebooting" in reason_of(core)
    assert _reboots(gpu_node) == 1
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert all(m == {"current": "disabled", "pending": "disabled"} for m in _modes(gpu_node))


def test_without_with_reboot_a_mode_change_that_needs_one_fails(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.init(reboot_required=True)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        labels = wait_state(core, "failed")
    reason = reason_of(core)
    assert "reboot required" in reason and "WITH_REBOOT is not set" in reason
    assert _reboots(gpu_node) == 0
    assert all(m == {"current": "disabled", "pending": "disabled"} for m in _modes(gpu_node))  # change cancelled
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES


def test_the_process_exits_after_the_reboot_and_a_kill_before_it_reboots_once(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.init(reboot_required=True)
    gpu_node.configure(with_reboot=True)
    set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
    with FakeDaemonSets(kubesim):
        # Killed after marking `rebooting`, before the reboot: the restart reboots (once) and exits like a node.
        proc = run_process(gpu_node, MIG_MANAGER_CRASH_AT="rebooting")
        assert proc.returncode == CRASH_EXIT_CODE, proc.stderr[-2000:]
        assert labels_of(core)[STATE_LABEL] == "rebooting" and _reboots(gpu_node) == 0
        proc = run_process(gpu_node)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "the host is rebooting" in proc.stderr
        assert _reboots(gpu_node) == 1
        with ThreadAgent(gpu_node):
            wait_state(core, "success", config="all-balanced")
    assert _reboots(gpu_node) == 1
