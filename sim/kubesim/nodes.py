"""Simulated GPU nodes: a state folder per node (its GPUs, its host's systemd units, its root file system), the Node
object (labels, capacity, conditions, node info), and the host-level reboot.

Folder of a node: `DIR/nodes/<name>/gpus.json` (the device layer's state file, `mig_manager.devices.simulated`),
`host-services.json` (the node agent's simulated host format, docs/agent.md), `root/` (what hostPath volumes see).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesim.topology import NodeSpec
from mig_manager.devices import simulated
from mig_manager.devices.simulated_host import init_host_services
from mig_manager.devices.simulated_host import locked as _locked
from mig_manager.devices.simulated_host import write_json as _write_json

KUBELET_VERSION = "v1.35.2"


@dataclass
class SimNode:
    spec: NodeSpec
    directory: Path
    index: int
    ready: bool = True
    boots: int = 0
    gpu_state: dict[str, Any] = field(default_factory=dict)
    gpu_mtime: int = 0
    reboots_seen: int = 0
    pod_ips: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def has_gpus(self) -> bool:
        return bool(self.spec.gpus)

    @property
    def gpu_path(self) -> Path:
        return self.directory / "gpus.json"

    @property
    def services_path(self) -> Path:
        return self.directory / "host-services.json"

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def ip(self) -> str:
        return f"10.0.{self.index // 250}.{self.index % 250 + 10}"

    def next_pod_ip(self) -> str:
        self.pod_ips += 1
        return f"10.{244 + self.index // 256}.{self.index % 256}.{self.pod_ips % 250 + 2}"

    # ------------------------------------------------------------ files

    def prepare(self) -> None:
        """Create the node's folder; GPUs and host units are created once and kept across restarts."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.has_gpus and not self.gpu_path.exists():
            simulated.init_host(
                self.gpu_path,
                self.spec.gpus,
                reboot_required_for_mode_change=self.spec.passthrough,
                mig_enabled=self.spec.mig_enabled,
            )
        if not self.services_path.exists():
            init_host_services(self.services_path, self.spec.host_services, state_file=self.spec.host_state_file)
        if self.has_gpus:
            self.read_gpus()
            self.reboots_seen = int(self.gpu_state.get("counters", {}).get("reboots", 0))

    def gpus_changed(self) -> bool:
        """Whether the GPU state file changed since it was last read (one stat)."""
        try:
            mtime = self.gpu_path.stat().st_mtime_ns
        except OSError:
            return False
        return mtime != self.gpu_mtime

    def read_gpus(self) -> dict[str, Any]:
        try:
            mtime = self.gpu_path.stat().st_mtime_ns
            self.gpu_state = simulated.read_state(self.gpu_path)
            self.gpu_mtime = mtime
        except (OSError, simulated.SimulationError):
            pass
        return self.gpu_state

    # ------------------------------------------------------------ the Node object

    def labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if self.has_gpus:
            labels["feature.node.kubernetes.io/pci-10de.present"] = "true"
        labels.update(self.spec.labels)
        return labels

    def node_object(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "labels": self.labels()}
        if self.spec.annotations:
            meta["annotations"] = dict(self.spec.annotations)
        spec: dict[str, Any] = {"podCIDR": f"10.244.{self.index % 256}.0/24"}
        if self.spec.taints:
            spec["taints"] = [dict(t) for t in self.spec.taints]
        return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec}

    def capacity(self) -> dict[str, str]:
        return {
            "cpu": self.spec.cpu,
            "memory": self.spec.memory,
            "pods": self.spec.pods,
            "ephemeral-storage": "1Ti",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }

    def status(self, now: str, previous: Mapping[str, Any] | None = None, reason: str = "") -> dict[str, Any]:
        previous = previous or {}
        capacity = {**(previous.get("capacity") or {}), **self.capacity()}
        allocatable = {**(previous.get("allocatable") or {}), **self.capacity()}
        old = {c.get("type"): c for c in previous.get("conditions") or []}

        def cond(kind: str, status: str, why: str, message: str) -> dict[str, Any]:
            before = old.get(kind) or {}
            since = before.get("lastTransitionTime", now) if before.get("status") == status else now
            return {
                "type": kind,
                "status": status,
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
                "reason": why,
                "message": message,
            }

        if self.ready:
            ready = cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        else:
            ready = cond("Ready", "False", "KubeletNotReady", reason or "container runtime is down")
        return {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                cond(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
                ),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                ready,
            ],
            "addresses": [{"type": "InternalIP", "address": self.ip}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"kubesim-{self.index:08d}",
                "systemUUID": f"kubesim-{self.index:08d}",
                "bootID": f"sim-boot-{self.boots}",
                "kernelVersion": "6.8.0-kubesim",
                "osImage": "Ubuntu 24.04 LTS (kubesim)",
                "containerRuntimeVersion": "containerd://2.1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }


# ---------------------------------------------------------------------------------------------------------------------
# The simulated host's systemd units (the node agent's format, docs/agent.md)


def reboot_host(node: SimNode) -> None:
    """What the host does when it reboots: the GPUs' pending MIG modes apply and every MIG instance is gone
    (`devices.simulated.reboot`); enabled units are started, the others stopped."""
    if node.has_gpus:
        simulated.reboot(node.gpu_path)
    if node.services_path.exists():
        with _locked(node.services_path):
            data = json.loads(node.services_path.read_text(encoding="utf-8"))
            for unit in (data.get("units") or {}).values():
                unit["active"] = "active" if unit.get("enabled") == "enabled" else "inactive"
            data["reboots"] = int(data.get("reboots", 0)) + 1
            data.setdefault("log", []).append({"op": "reboot"})
            _write_json(node.services_path, data)
