"""Simulated GPU nodes: the default topology, GFD and device-plugin emulation following the GPUs while they run,
and node reboots (through kubesim, and requested through the simulated host as the node agent does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.server import KubeSim
from kubesim.testing import Tools, cluster_config, wait_for
from kubesim.topology import NodeSpec, Topology
from mig_manager.catalog import Placement
from mig_manager.devices import simulated
from mig_manager.devices.base import MigMode
from mig_manager.devices.simulated_host import read_host_services

NVIDIA = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: nvidia, namespace: default}
spec:
  selector: {matchLabels: {app: nvidia}}
  template:
    metadata: {labels: {app: nvidia}}
    spec:
      nodeSelector: {"feature.node.kubernetes.io/pci-10de.present": "true"}
      containers:
      - name: plugin
        image: nvcr.io/nvidia/k8s-device-plugin:v0.20.0
        command: [nvidia-device-plugin]
        env: [{name: MIG_STRATEGY, value: "@S@"}]
      - name: gfd
        image: nvcr.io/nvidia/k8s-device-plugin:v0.20.0
        command: [gpu-feature-discovery]
        env: [{name: MIG_STRATEGY, value: "@S@"}]
"""


def tools_for(sim: KubeSim, tmp_path: Path) -> Tools:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Tools(sim, home)


def node(tools: Tools, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(tools.kubectl("get", "node", name, "-o", "json").stdout)
    return result


def ready(obj: dict[str, Any]) -> str:
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


@pytest.fixture
def default_cluster() -> Iterator[KubeSim]:
    with KubeSim(cluster_config("default")) as sim:
        yield sim


def test_default_topology(default_cluster: KubeSim, tmp_path: Path) -> None:
    kubesim_cluster = default_cluster
    tools = tools_for(kubesim_cluster, tmp_path)
    nodes = {n["metadata"]["name"]: n for n in json.loads(tools.kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    assert set(nodes) == {"node-h100", "node-a100", "node-a30", "node-cpu"}
    for name, obj in nodes.items():
        assert ready(obj) == "True"
        assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == name
        has_gpus = name != "node-cpu"
        assert (obj["metadata"]["labels"].get("feature.node.kubernetes.io/pci-10de.present") == "true") == has_gpus
    gpus = {
        name: [g["product_name"] for g in simulated.read_state(kubesim_cluster.node_dir(name) / "gpus.json")["gpus"]]
        for name in ("node-h100", "node-a100", "node-a30")
    }
    assert gpus["node-h100"] == ["NVIDIA H100 80GB HBM3"] * 8
    assert gpus["node-a100"] == ["NVIDIA A100-SXM4-40GB"] * 4 + ["NVIDIA A100-SXM4-80GB"] * 4
    a30 = simulated.read_state(kubesim_cluster.node_dir("node-a30") / "gpus.json")["gpus"]
    assert [g["reboot_required"] for g in a30] == [True, True]
    host = read_host_services(kubesim_cluster.node_dir("node-h100") / "host-services.json")
    assert host["kind"] == "mig-manager-simulated-host-services"
    assert host["units"]["nvsm.service"]["active"] == "active"
    assert host["stateFile"] == {"selectedConfig": None}
    a100_host = read_host_services(kubesim_cluster.node_dir("node-a100") / "host-services.json")
    assert a100_host["units"]["dcgm-exporter.service"]["active"] == "failed"
    assert not (kubesim_cluster.node_dir("node-cpu") / "gpus.json").exists()


@pytest.fixture
def h100(tmp_path: Path) -> Iterator[KubeSim]:
    with KubeSim(cluster_config(Topology(nodes=(NodeSpec("gpu-1", gpus="H100x2"),)))) as sim:
        yield sim


def add_instance(path: Path, gpu: int, gi_profile: int, start: int, size: int) -> None:
    backend = simulated.SimulatedBackend(path)
    gi = backend.create_gpu_instance(gpu, gi_profile, Placement(start, size))
    ci_profile = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}[size if size < 8 else 7]
    backend.create_compute_instance(gpu, gi.id, ci_profile, Placement(0, size if size < 8 else 7))


def test_gfd_and_plugin_follow_the_gpus(h100: KubeSim, tmp_path: Path) -> None:
    tools = tools_for(h100, tmp_path)
    state = h100.node_dir("gpu-1") / "gpus.json"
    tools.kubectl("apply", "-f", "-", stdin=NVIDIA.replace("@S@", "mixed"))
    wait_for(lambda: node(tools, "gpu-1")["metadata"]["labels"].get("nvidia.com/gpu.count") == "2", 30, what="GFD")
    got = node(tools, "gpu-1")
    assert got["metadata"]["labels"]["nvidia.com/mig.strategy"] == "mixed"
    assert got["status"]["capacity"]["nvidia.com/gpu"] == "2"

    # MIG on GPU 0 (Hopper: at once), one 1g.10gb instance: labels and capacity follow while the pods run
    backend = simulated.SimulatedBackend(state)
    backend.set_mig_mode(0, MigMode.ENABLED)
    add_instance(state, 0, 19, 0, 1)

    def migrated() -> bool:
        obj = node(tools, "gpu-1")
        labels, capacity = obj["metadata"]["labels"], obj["status"]["capacity"]
        return (
            labels.get("nvidia.com/mig-1g.10gb.count") == "1"
            and capacity.get("nvidia.com/mig-1g.10gb") == "1"
            and capacity.get("nvidia.com/gpu") == "1"
        )

    wait_for(migrated, 30, what="labels and capacity after the GPU change")
    labels = node(tools, "gpu-1")["metadata"]["labels"]
    assert labels["nvidia.com/mig-1g.10gb.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert labels["nvidia.com/gpu.count"] == "1"

    # single with one MIG and one full GPU is invalid: GFD says so, the plugin refuses to start (restarts)
    tools.kubectl("delete", "ds", "nvidia")
    wait_for(lambda: not json.loads(tools.kubectl("get", "pods", "-o", "json").stdout)["items"], 30, what="pods gone")
    kept = node(tools, "gpu-1")
    assert kept["metadata"]["labels"]["nvidia.com/mig-1g.10gb.count"] == "1"  # labels stay without their writer
    assert kept["status"]["allocatable"]["nvidia.com/mig-1g.10gb"] == "0"  # the plugin is gone
    tools.kubectl("apply", "-f", "-", stdin=NVIDIA.replace("@S@", "single"))

    def invalid() -> bool:
        obj = node(tools, "gpu-1")
        labels = obj["metadata"]["labels"]
        return labels.get("nvidia.com/gpu.product") == "NVIDIA-H100-80GB-HBM3-MIG-INVALID" and not any(
            k.startswith("nvidia.com/mig-1g") for k in labels
        )

    wait_for(invalid, 30, what="MIG-INVALID labels, mixed labels removed")

    def plugin_restarts() -> int:
        pods = json.loads(tools.kubectl("get", "pods", "-l", "app=nvidia", "-o", "json").stdout)["items"]
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        return next((s["restartCount"] for s in statuses if s["name"] == "plugin"), 0)

    wait_for(lambda: plugin_restarts() >= 1, 30, what="the plugin crash-looping")
    assert "invalid MIG configuration" in tools.kubectl("logs", "-l", "app=nvidia", "-c", "plugin").stdout


@pytest.fixture
def a30() -> Iterator[KubeSim]:
    topology = Topology(nodes=(NodeSpec("vm-1", gpus="A30x2", passthrough=True, mig_enabled=True), NodeSpec("cpu")))
    with KubeSim(cluster_config(topology, reboot_seconds=1.0)) as sim:
        yield sim


def daemon_pod(tools: Tools) -> dict[str, Any] | None:
    pods = json.loads(tools.kubectl("get", "pods", "-l", "app=nvidia", "-o", "json").stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    return running[0] if running else None


def test_reboot_applies_pending_modes_and_recreates_pods(a30: KubeSim, tmp_path: Path) -> None:
    tools = tools_for(a30, tmp_path)
    state = a30.node_dir("vm-1") / "gpus.json"
    add_instance(state, 0, 0, 0, 4)  # GPU 0: MIG enabled, one 4g.24gb instance
    backend = simulated.SimulatedBackend(state)
    assert backend.set_mig_mode(1, MigMode.DISABLED).name == "RESET_REQUIRED"  # passthrough: pending until reboot
    tools.kubectl("apply", "-f", "-", stdin=NVIDIA.replace("@S@", "mixed"))
    before = wait_for(lambda: daemon_pod(tools), 30, what="the daemon pod")

    a30.reboot_node("vm-1", wait=False)
    wait_for(lambda: ready(node(tools, "vm-1")) == "False", 30, what="NotReady while rebooting")
    wait_for(lambda: ready(node(tools, "vm-1")) == "True", 30, what="Ready again")
    after = wait_for(lambda: daemon_pod(tools), 30, what="the daemon pod recreated")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    gpus = simulated.read_state(state)["gpus"]
    assert gpus[0]["gpu_instances"] == []  # instances are lost
    assert gpus[1]["mig_mode"] == {"current": "disabled", "pending": "disabled"}  # the pending mode applied
    host = read_host_services(a30.node_dir("vm-1") / "host-services.json")
    assert host["reboots"] == 1
    assert node(tools, "vm-1")["status"]["nodeInfo"]["bootID"] == "sim-boot-1"


def test_reboot_requested_through_the_simulated_host(a30: KubeSim, tmp_path: Path) -> None:
    tools = tools_for(a30, tmp_path)
    tools.kubectl("apply", "-f", "-", stdin=NVIDIA.replace("@S@", "mixed"))
    before = wait_for(lambda: daemon_pod(tools), 30, what="the daemon pod")
    simulated.reboot(a30.node_dir("vm-1") / "gpus.json")  # what the node agent's SimulatedHost.reboot does
    after = wait_for(
        lambda: (p := daemon_pod(tools)) and p["metadata"]["uid"] != before["metadata"]["uid"] and p,
        30,
        what="pods recreated after the host's reboot",
    )
    assert after["spec"]["nodeName"] == "vm-1"
    assert ready(node(tools, "vm-1")) == "True"
    assert node(tools, "vm-1")["status"]["nodeInfo"]["bootID"] == "sim-boot-1"
