"""Acceptance 1: every transition of the state label, each gate paused and restored (a `false` gate stays `false`),
host services stopped and started again in reverse order, against kubesim with a simulated node."""

from __future__ import annotations

import json

from agent_support import (
    NAMESPACE,
    NODE,
    FakeDaemonSets,
    ThreadAgent,
    annotations_of,
    events_of,
    iter_gate_values,
    labels_of,
    reason_of,
    set_labels,
    wait_state,
)
from kubernetes import client

from gpu_operator.inventory import parse_inventory
from kubesim.testing import wait_for
from mig_manager.agent.labels import CLIENT_GATE, PAUSED, STATE_LABEL
from mig_manager.devices.simulated import SimulatedBackend, read_state
from mig_manager.devices.simulated_host import read_host_services
from mig_manager.parted import apply_config, assert_config
from mig_manager.spec import load_spec_file

DP = "nvidia.com/gpu.deploy.device-plugin"
GFD = "nvidia.com/gpu.deploy.gpu-feature-discovery"
NVSM = "nvidia.com/gpu.deploy.nvsm"


def _pod(core: client.CoreV1Api, app: str) -> None:
    core.create_namespaced_pod(
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{app}-x", "labels": {"app": app}},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]},
        },
    )


def _states(seen: list[dict[str, str]]) -> list[str | None]:
    return list(iter_gate_values(seen, STATE_LABEL))


def test_full_reconfiguration_with_mode_change_and_host_services(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    set_labels(core, {GFD: "false", CLIENT_GATE: "true"})
    for app in ("nvidia-cuda-validator", "nvidia-device-plugin-validator", "nvidia-operator-validator"):
        _pod(core, app)
    gpu_node.configure(with_shutdown_host_gpu_clients=True)
    with FakeDaemonSets(kubesim, client_pod=True) as daemonsets, ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        labels = wait_state(core, "success", config="all-balanced")
        wanted = {f"nvidia-device-plugin-daemonset-{NODE}", f"client-app-{NODE}"}
        wait_for(lambda: set(daemonsets.pods()) >= wanted, timeout=20, what="component pods back")
    seen = daemonsets.seen
    # The state label: nothing, then pending, then success (no other value in between).
    assert _states(seen)[-2:] == ["pending", "success"]
    assert _states(seen).count("pending") == 1
    # Gates: paused while pending, restored after; `false` stays false; a missing gate ends `true` (NVIDIA).
    assert list(iter_gate_values(seen, DP)) == ["true", PAUSED, "true"]
    assert list(iter_gate_values(seen, CLIENT_GATE)) == ["true", PAUSED, "true"]
    assert list(iter_gate_values(seen, NVSM)) == [None, PAUSED, "true"]
    assert list(iter_gate_values(seen, GFD)) == ["false"]
    assert labels[GFD] == "false"
    for snapshot in seen:
        if snapshot.get(STATE_LABEL) == "pending":
            assert snapshot[DP] == PAUSED
        if snapshot.get(DP) == PAUSED:
            assert snapshot.get(STATE_LABEL) == "pending"
    # Host services: active ones stopped in the clients-file order (kubelet last: the mode changes), failed and
    # inactive-but-enabled ones remembered, everything started again in reverse order.
    host = read_host_services(gpu_node.services)
    ops = [(e["op"], e["unit"]) for e in host["log"]]
    assert ops == [
        ("stop", "nvsm.service"),
        ("stop", "nvidia-dcgm.service"),
        ("stop", "kubelet.service"),
        ("start", "kubelet.service"),
        ("start", "failed.service"),
        ("start", "nvidia-dcgm.service"),
        ("start", "nvsm.service"),
    ]
    assert all(host["units"][u]["active"] == "active" for u in ("nvsm.service", "kubelet.service", "failed.service"))
    assert host["units"]["dcgm-exporter.service"]["active"] == "inactive"
    assert host["stateFile"] == {"selectedConfig": "all-balanced"}
    # The GPUs, the annotations and the events.
    spec = load_spec_file(str(gpu_node.config)).spec
    assert assert_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-balanced").ok
    annotations = annotations_of(core)
    assert "nvidia.com/mig.config.journal" not in annotations
    assert reason_of(core) == "MIG config 'all-balanced' applied"
    inventory = parse_inventory(annotations["nvidia.com/mig.inventory"])
    assert len(inventory.gpus) == 8
    assert all(dict(g.mig_devices) == {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2} for g in inventory.gpus)
    reasons = [r for _, r, _ in events_of(core)]
    assert sorted(reasons) == ["MigConfigApplied", "MigConfigChangeStarted"]
    pods = json.loads(core.list_namespaced_pod(NAMESPACE, _preload_content=False).data)["items"]
    apps = {p["metadata"]["labels"]["app"] for p in pods}
    assert not apps & {"nvidia-cuda-validator", "nvidia-device-plugin-validator", "nvidia-operator-validator"}


def test_already_applied_goes_to_success_without_pending(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-1g.10gb").ok
    set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
    with FakeDaemonSets(kubesim) as daemonsets, ThreadAgent(gpu_node):
        wait_state(core, "success")
    assert "pending" not in _states(daemonsets.seen)
    assert list(iter_gate_values(daemonsets.seen, DP)) == ["true"]
    assert reason_of(core) == "MIG config 'all-1g.10gb' is applied"
    assert [r for _, r, _ in events_of(core)] == ["MigConfigApplied"]


def test_instances_only_change_leaves_the_kubelet_alone(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-1g.10gb").ok
    gpu_node.configure(with_shutdown_host_gpu_clients=True)
    set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
    with FakeDaemonSets(kubesim) as daemonsets, ThreadAgent(gpu_node):
        wait_state(core, "success")
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_state(core, "success", config="all-balanced")
        # the stand-in DaemonSets watch the Node in their own thread: wait until they saw the final state too
        wait_for(
            lambda: _states(daemonsets.seen)[-2:] == ["pending", "success"], timeout=20, what="the watch seeing success"
        )
        assert _states(daemonsets.seen)[-3:] == ["success", "pending", "success"]
    units = {e.get("unit") for e in read_host_services(gpu_node.services)["log"]}
    assert "kubelet.service" not in units
    assert labels_of(core)[DP] == "true"


def test_a_paused_node_left_by_someone_else_is_restored(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """A node left `pending` with paused gates and no journal (e.g. by NVIDIA's agent) whose config holds."""
    spec = load_spec_file(str(gpu_node.config)).spec
    assert apply_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-balanced").ok
    set_labels(core, {"nvidia.com/mig.config": "all-balanced", STATE_LABEL: "pending", DP: PAUSED, NVSM: PAUSED})
    with ThreadAgent(gpu_node):
        labels = wait_state(core, "success")
    assert labels[DP] == "true" and labels[NVSM] == "true"


def test_pods_that_do_not_go_away_time_out_and_everything_is_restored(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.configure(pod_wait_timeout=1.0, max_retries=0, with_shutdown_host_gpu_clients=True)
    before = read_state(gpu_node.gpu_state)["gpus"]
    with FakeDaemonSets(kubesim, stuck=True), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        labels = wait_state(core, "failed", timeout=30)
    reason = reason_of(core)
    assert "timed out after 1s waiting for pods to go away" in reason
    assert f"{NAMESPACE}/nvidia-device-plugin-daemonset-{NODE}" in reason
    assert labels[DP] == "true" and labels[NVSM] == "true"
    assert read_state(gpu_node.gpu_state)["gpus"] == before
    assert read_host_services(gpu_node.services)["log"] == []  # nothing was stopped


def test_a_host_service_that_fails_to_start_fails_the_run_with_gates_restored(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    gpu_node.init(units={"nvsm.service": {"active": "active", "failStart": True}})
    gpu_node.configure(with_shutdown_host_gpu_clients=True, max_retries=0)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        labels = wait_state(core, "failed", timeout=30)
    assert "starting host services failed: systemctl start nvsm.service: job failed" in reason_of(core)
    assert labels[DP] == "true"
    assert read_host_services(gpu_node.services)["units"]["nvsm.service"]["active"] == "failed"


def test_a_failure_after_a_success_in_the_same_process_still_restores_the_gates(kubesim, core, gpu_node) -> None:  # type: ignore[no-untyped-def]
    """NVIDIA's process-wide "already restored" flags skip restoring after the first success; here every run
    restores its own gates and services."""
    from mig_manager.devices.simulated import add_fault

    gpu_node.configure(with_shutdown_host_gpu_clients=True, max_retries=0)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node):
        set_labels(core, {"nvidia.com/mig.config": "all-balanced"})
        wait_state(core, "success", config="all-balanced")
        add_fault(gpu_node.gpu_state, "create_gpu_instance", "UNKNOWN", gpu=5, times=1)
        set_labels(core, {"nvidia.com/mig.config": "all-1g.10gb"})
        labels = wait_state(core, "failed", timeout=60)
    assert labels[DP] == "true" and labels[NVSM] == "true"
    assert "restored the previous geometry" in reason_of(core)
    units = read_host_services(gpu_node.services)["units"]
    assert units["nvsm.service"]["active"] == "active" and units["nvidia-dcgm.service"]["active"] == "active"
    spec = load_spec_file(str(gpu_node.config)).spec
    assert assert_config(SimulatedBackend(gpu_node.gpu_state), spec, "all-balanced").ok
