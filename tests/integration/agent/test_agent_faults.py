"""Acceptance 4: API faults injected by kubesim during reconfigurations, and NVML faults at each backend call: the node
converges, or ends `failed` with its previous geometry (and the gates restored either way)."""

from __future__ import annotations

from typing import Any

import pytest
from agent_support import (
    DEFAULT_GATES,
    FakeDaemonSets,
    Node,
    ThreadAgent,
    annotations_of,
    events_of,
    reason_of,
    set_labels,
    wait_state,
)

from kubesim.testing import wait_for
from mig_manager.devices.base import MUTATING_OPS, READ_ONLY_OPS
from mig_manager.devices.simulated import SimulatedBackend, add_fault, read_state
from mig_manager.parted import apply_config, assert_config
from mig_manager.spec import load_spec_file


def _applied(node: Node, config: str) -> bool:
    spec = load_spec_file(str(node.config)).spec
    return assert_config(SimulatedBackend(node.gpu_state), spec, config).ok


def _geometry(node: Node) -> list[Any]:
    return [(g["mig_mode"], g["gpu_instances"]) for g in read_state(node.gpu_state)["gpus"]]


API_FAULTS = [
    {"verb": "patch", "resource": "nodes", "status": 500, "count": 2},
    {"verb": "patch", "resource": "nodes", "status": 503, "count": 7},
    {"verb": "patch", "resource": "nodes", "status": 409, "count": 1},
    {"verb": "patch", "resource": "nodes", "action": "drop", "count": 4},
    {"verb": "list", "resource": "pods", "status": 500, "count": 5},
    {"verb": "watch", "resource": "pods", "action": "drop", "count": 3},
    {"verb": "watch", "resource": "nodes", "status": 500, "count": 3},
    {"verb": "create", "resource": "events", "status": 500},
    {"verb": "*", "resource": "nodes", "status": 503, "probability": 0.25},
]


@pytest.mark.parametrize(
    "fault", API_FAULTS, ids=[f"{f['verb']}-{f['resource']}-{f.get('action', f.get('status'))}" for f in API_FAULTS]
)
def test_api_faults_during_a_reconfiguration_converge(kubesim, core, gpu_node, fault: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    gpu_node.configure(api_retries=2)
    set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
    kubesim.add_fault(**fault)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        labels = wait_state(core, "success", config="all-balanced", timeout=60)
        kubesim.clear_faults()
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert "nvidia.com/mig.config.journal" not in annotations_of(core)
    assert _applied(gpu_node, "all-balanced")


OPS = READ_ONLY_OPS + MUTATING_OPS


@pytest.mark.parametrize("op", OPS)
def test_an_nvml_fault_at_each_backend_call_is_retried(kubesim, core, tmp_path, op: str) -> None:  # type: ignore[no-untyped-def]
    """A100s (mode changes need a reset) going from all-1g.10gb (destroys) or MIG disabled (mode change) to
    all-balanced; the op fails once, the run is rolled back, and the retry converges."""
    from agent_support import DEFAULT_GATES as GATES
    from agent_support import create_node

    create_node(core, GATES)
    node = Node(kubesim, tmp_path, gpus="A100-80GBx2").init()
    if op.startswith("destroy"):
        spec = load_spec_file(str(node.config)).spec
        assert apply_config(SimulatedBackend(node.gpu_state), spec, "all-1g.10gb").ok
    add_fault(node.gpu_state, op, "UNKNOWN", after=1 if op in READ_ONLY_OPS else 0, times=1)
    backend = SimulatedBackend(node.gpu_state)
    if op == "processes":  # only asked when a reset finds the GPU in use
        backend.add_process(0, 99)
    with FakeDaemonSets(kubesim), ThreadAgent(node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        if op == "processes":
            wait_for(lambda: "in use" in reason_of(core), timeout=60, what="in use")
            backend.remove_process(0, 99)
        labels = wait_state(core, "success", config="all-balanced", timeout=60)
    assert {k: labels[k] for k in GATES} == GATES
    assert _applied(node, "all-balanced")
    fault = read_state(node.gpu_state)["faults"][0]
    assert fault["fired"] == 1, f"the {op} fault never fired"
    if op in MUTATING_OPS:  # a read may fail where it is only a diagnostic (the inventory): no failed run then
        assert any(r == "MigConfigFailed" for _, r, _ in events_of(core))


@pytest.mark.parametrize("op", [op for op in MUTATING_OPS if op != "reset"])
def test_an_nvml_fault_with_no_retries_left_ends_failed_with_the_previous_geometry(
    kubesim, core, gpu_node, op: str
) -> None:  # type: ignore[no-untyped-def]
    """H100s in all-1g.10gb; GPU 3 fails one call of `op` in the middle of the change; no retry is allowed: the
    node ends `failed` with every GPU back in all-1g.10gb (the device layer's rollback) and the gates restored."""
    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-1g.10gb").ok
    target = "all-disabled" if op == "set_mig_mode" else "all-balanced"
    before = _geometry(gpu_node)
    add_fault(gpu_node.gpu_state, op, "UNKNOWN", gpu=3, times=1)
    gpu_node.configure(max_retries=0)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        set_labels(core, {"nvidia.com/mig.config": target})
        labels = wait_state(core, "failed", timeout=60)
        assert runner.agent.runs == 1
    reason = reason_of(core)
    assert "GPU 3 (H100-SXM5-80GB)" in reason and "(UNKNOWN)" in reason and "restored the previous geometry" in reason
    assert "gave up after 1 attempts" in reason
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert _geometry(gpu_node) == before


def test_a_gpu_in_use_is_retried_until_it_is_free(kubesim, core, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from agent_support import create_node

    create_node(core, DEFAULT_GATES)
    node = Node(kubesim, tmp_path, gpus="A100-80GBx2").init()
    backend = SimulatedBackend(node.gpu_state)
    backend.add_process(1, 4242)
    node.configure(backoff_initial=0.5, backoff_max=0.5, max_retries=100)
    with FakeDaemonSets(kubesim), ThreadAgent(node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_for(lambda: "in use" in reason_of(core), timeout=60, what="in use")
        assert _geometry(node)[1][0] == {"current": "disabled", "pending": "disabled"}  # the pending change cancelled
        backend.remove_process(1, 4242)
        wait_state(core, "success", config="all-balanced", timeout=60)
    assert _applied(node, "all-balanced")


def test_the_api_down_in_the_middle_of_a_run_then_back(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """Node writes fail for a while in the middle of a run (the pods are slow to go): the journal stays on the Node,
    and once the API is back the agent finishes the run."""
    from agent_support import NAMESPACE, labels_of

    gpu_node.configure(pod_wait_timeout=2.0, api_retries=1, max_retries=100)
    with FakeDaemonSets(kubesim, stuck=True) as daemonsets, ThreadAgent(gpu_node) as runner:
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_for(lambda: labels_of(core).get("nvidia.com/mig.config.state") == "pending", timeout=30, what="pending")
        rule = kubesim.add_fault(verb="patch", resource="nodes", status=503)
        wait_for(lambda: rule.hits >= 4, timeout=60, what="the agent hitting the failing API")
        assert "nvidia.com/mig.config.journal" in annotations_of(core)  # nothing could be restored yet
        kubesim.clear_faults()
        daemonsets.stuck = False
        for pod in daemonsets.pods():
            core.delete_namespaced_pod(pod, NAMESPACE)
        labels = wait_state(core, "success", config="all-balanced", timeout=60)
        assert runner.agent.runs >= 2
    assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
    assert _applied(gpu_node, "all-balanced")


def test_a_retry_fires_on_time_even_when_other_node_events_arrive_during_the_back_off(  # type: ignore[no-untyped-def]
    kubesim, core, gpu_node
) -> None:
    """Found by the chaos test: an event the agent ignores (a foreign label) woke it during the back-off, the pass
    returned "nothing to do" and the retry waited for the periodic resync (60 s here) instead of the back-off (2 s)."""
    add_fault(gpu_node.gpu_state, "set_mig_mode", "GPU_IS_LOST", times=1)
    gpu_node.configure(backoff_initial=2.0, backoff_max=2.0, max_retries=100)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_for(lambda: "retrying in" in reason_of(core), timeout=30, what="the first failure, backing off")
        set_labels(core, {"example.com/unrelated": "1"})  # wakes the agent before the back-off ends
        wait_state(core, "success", config="all-balanced", timeout=20)
    assert _applied(gpu_node, "all-balanced")


def test_a_rollback_that_fails_is_recorded_and_retries_return_to_the_original_geometry(  # type: ignore[no-untyped-def]
    kubesim, core, gpu_node
) -> None:
    """Found by the chaos test: GPU 0 keeps failing to create compute instances, so the rollback of a failed run cannot
    recreate its old 7g.80gb instance either. The retry used to checkpoint that half-restored GPU, report "restored
    the previous geometry" and give up, leaving it so; now the original geometry is kept in an annotation, every retry
    returns there (and says when it cannot), the agent keeps retrying (at the back-off's maximum) instead of giving up,
    and once the GPU works the node ends where the user asked."""
    import json

    from mig_manager.devices.simulated import clear_faults
    from mig_manager.parted.state import fetch_state, state_to_json

    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-7g.80gb").ok
    original = state_to_json(fetch_state(SimulatedBackend(gpu_node.gpu_state)))
    before = _geometry(gpu_node)
    set_labels(core, {"nvidia.com/mig.config": "all-7g.80gb"})
    gpu_node.configure(backoff_initial=0.2, backoff_max=0.2, max_retries=1)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        wait_state(core, "success", config="all-7g.80gb")
        add_fault(gpu_node.gpu_state, "create_compute_instance", "GPU_IS_LOST", gpu=0, times=-1)
        set_labels(core, {"nvidia.com/mig.config": "all-4g.40gb"})

        def third_failure() -> str:
            reason = reason_of(core)
            return reason if runner.agent.runs >= 3 and "FAILED" in reason else ""

        reason = wait_for(third_failure, timeout=60, what="a third failed run, beyond max_retries")
        assert "putting back the MIG geometry from before the change (before the first failed attempt) FAILED" in reason
        assert "retrying in" in reason and "gave up" not in reason
        annotations = annotations_of(core)
        assert json.loads(annotations["nvidia.com/mig.config.restore"]) == original  # not the half-restored GPU 0
        assert _geometry(gpu_node)[1:] == before[1:]  # every other GPU is back
        clear_faults(gpu_node.gpu_state)  # the GPU works again: the next retry applies what the label asks
        wait_state(core, "success", config="all-4g.40gb")
    assert "nvidia.com/mig.config.restore" not in annotations_of(core)
    assert _applied(gpu_node, "all-4g.40gb")


def test_gpus_that_cannot_be_read_after_a_half_done_change_are_retried_until_they_can(  # type: ignore[no-untyped-def]
    kubesim, core, gpu_node
) -> None:
    """Found by the soak: the MIG mode had been enabled when listing instances began to fail, so neither the run nor
    its rollback could finish, and later passes ("cannot read the GPUs") gave up after max_retries, leaving the GPUs
    half-changed. Now those passes say when they retry and never give up while a geometry is recorded to put back."""
    add_fault(gpu_node.gpu_state, "gpu_instances", "TIMEOUT", times=-1)
    gpu_node.configure(backoff_initial=0.2, backoff_max=0.2, max_retries=1)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})

        def unreadable() -> str:
            reason = reason_of(core)
            return reason if reason.startswith("cannot read the GPUs") else ""

        reason = wait_for(unreadable, timeout=60, what="the GPUs unreadable after the half-done change")
        assert "retrying in" in reason
        assert "nvidia.com/mig.config.restore" in annotations_of(core)
        wait_for(
            lambda: runner.agent.attempts and max(a.failures for a in runner.agent.attempts.values()) >= 4,
            timeout=60,
            what="failures beyond max_retries",
        )
        assert "gave up" not in reason_of(core)
        from mig_manager.devices.simulated import clear_faults

        clear_faults(gpu_node.gpu_state)
        wait_state(core, "success", config="all-balanced", timeout=60)
    assert "nvidia.com/mig.config.restore" not in annotations_of(core)
    assert _applied(gpu_node, "all-balanced")


def test_a_resumed_run_that_cannot_read_the_gpus_ends_failed(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """An agent killed in the middle of a run restarts while listing GPU instances fails: the resumed run ends `failed`
    (gates restored, journal removed) and is retried once the GPUs can be read."""
    from agent_support import run_process

    from mig_manager.agent.agent import CRASH_EXIT_CODE
    from mig_manager.devices.simulated import clear_faults

    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-balanced").ok
    set_labels(core, {"nvidia.com/mig.config": "all-disabled"})
    gpu_node.configure(backoff_initial=0.2, backoff_max=0.5, max_retries=100)
    with FakeDaemonSets(kubesim):
        assert run_process(gpu_node, MIG_MANAGER_CRASH_AT="paused").returncode == CRASH_EXIT_CODE
        assert "nvidia.com/mig.config.journal" in annotations_of(core)
        add_fault(gpu_node.gpu_state, "gpu_instances", "UNKNOWN", times=-1)
        with ThreadAgent(gpu_node):
            labels = wait_state(core, "failed", timeout=30)
            assert "(UNKNOWN)" in reason_of(core) and "retrying in" in reason_of(core)
            assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
            assert "nvidia.com/mig.config.journal" not in annotations_of(core)
            clear_faults(gpu_node.gpu_state)
            wait_state(core, "success", config="all-disabled", timeout=30)
    assert _applied(gpu_node, "all-disabled")


def test_a_run_that_cannot_read_the_gpus_to_start_says_failed(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """Found by the chaos test: the agent decides some changes without listing the instances, but its checkpoint
    lists them; that read failed outside any handler, every pass ended in "reconcile failed", and the node kept saying
    `success` for the config it had before the label changed."""
    from mig_manager.devices.simulated import clear_faults

    config = "all-disabled"  # decided on the MIG mode alone, without listing instances
    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-balanced").ok
    set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
    gpu_node.configure(backoff_initial=0.2, backoff_max=0.5, max_retries=100)
    with FakeDaemonSets(kubesim):
        with ThreadAgent(gpu_node):
            wait_state(core, "success", config="all-balanced")
        # the label and the fault both there when the agent looks (else it fails on the old config's assessment)
        add_fault(gpu_node.gpu_state, "gpu_instances", "UNKNOWN", times=-1)
        set_labels(core, {"nvidia.com/mig.config": config})
        with ThreadAgent(gpu_node):
            labels = wait_state(core, "failed", timeout=30)
            reason = reason_of(core)
            assert reason.startswith("cannot read the GPUs") and "(UNKNOWN)" in reason and "retrying in" in reason
            assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES  # nothing was paused
            clear_faults(gpu_node.gpu_state)
            wait_state(core, "success", config=config, timeout=30)
    assert _applied(gpu_node, config)
