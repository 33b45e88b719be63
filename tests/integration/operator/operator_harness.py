"""Harness of the operator's integration tests: the operator as a real process (`python -m gpu_operator run`),
and a view of the cluster through the real kubernetes client and kubectl."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesim.server import KubeSim
from kubesim.testing import Tools, kube_client, wait_for

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "crds" / "nvidia.com_clusterpolicies.yaml"
NS = "gpu-operator"
IMAGES = {
    "MIG_MANAGER_IMAGE": "gpu-operator-mig/mig-manager:test",
    "DEVICE_PLUGIN_IMAGE": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
    "GFD_IMAGE": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
    "DCGM_EXPORTER_IMAGE": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.2-4.8.1-distroless",
}
TIMEOUT = 60.0
PCI = {"feature.node.kubernetes.io/pci-10de.present": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorProcess:
    sim: KubeSim
    log_dir: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    health_port: int = 0
    starts: int = 0

    def start(self) -> OperatorProcess:
        self.starts += 1
        self.metrics_port, self.health_port = free_port(), free_port()
        env = dict(os.environ)
        env.update(IMAGES)
        env.pop("KUBECONFIG", None)
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpu_operator",
                "--log-level=debug",
                "run",
                f"--kubeconfig={self.sim.kubeconfig}",
                f"--namespace={NS}",
                f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
                "--resync-period=0.5",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        log.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))

    def metric(self, name: str, **labels: str) -> float:
        """A metric from /metrics (0 when absent or not yet served)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        want = "gpu_operator_" + name
        if labels:
            want += "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def reconciles(self) -> float:
        return self.metric("reconciles_total", result="success")

    def wait_reconciles(self, more: int, timeout: float = TIMEOUT) -> None:
        """Wait until the operator has completed `more` further reconciles (it resyncs every 0.5 s)."""
        start = self.reconciles()
        wait_for(lambda: self.reconciles() >= start + more, timeout, 0.1, f"{more} more reconciles")

    def health(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0


class Cluster:
    """Reads through the real kubernetes client; writes through kubectl where NVIDIA's docs use kubectl."""

    def __init__(self, sim: KubeSim, tools: Tools) -> None:
        from kubernetes import client

        self.sim = sim
        self.tools = tools
        self.api = kube_client(sim)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.tools.kubectl(*args, stdin=stdin).stdout

    def apply(self, doc: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(doc))

    def policy(self, name: str = "cluster-policy") -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", name)
        return result

    def state(self, name: str = "cluster-policy") -> str | None:
        return (self.policy(name).get("status") or {}).get("state")

    def condition(self, kind: str, name: str = "cluster-policy") -> dict[str, Any]:
        for c in (self.policy(name).get("status") or {}).get("conditions") or []:
            if c["type"] == kind:
                return dict(c)
        return {}

    def daemonset(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            result: dict[str, Any] = self.api.sanitize_for_serialization(self.apps.read_namespaced_daemon_set(name, NS))
            return result
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def env(self, daemonset: str) -> dict[str, Any]:
        ds = self.daemonset(daemonset)
        assert ds is not None, daemonset
        container = ds["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}

    def node_labels(self, name: str) -> dict[str, str]:
        return dict(self.core.read_node(name).metadata.labels or {})

    def add_node(self, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
        if annotations:
            body["metadata"]["annotations"] = annotations  # type: ignore[index]
        self.core.create_node(body)

    def warnings(self) -> list[str]:
        """Reasons of the Warning Events in the operator namespace, oldest first."""
        events = sorted(self.core.list_namespaced_event(NS).items, key=lambda e: int(e.metadata.resource_version or 0))
        return [e.reason for e in events if e.type == "Warning"]

    def wait_warnings(self, expected: list[str]) -> None:
        """The Event is posted just after the status it explains: wait for it, then require exactly these."""
        wait_for(lambda: len(self.warnings()) >= len(expected), TIMEOUT, 0.1, f"Warning Events {expected}")
        assert self.warnings() == expected

    def writes(self) -> int:
        """kubesim's resourceVersion: it moves on every committed write, and only then."""
        return self.sim.resource_version()


def policy_doc(name: str = "cluster-policy", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": name}, "spec": spec}


HELM_SPEC: dict[str, Any] = {
    "operator": {"runtimeClass": "nvidia"},
    "daemonsets": {"priorityClassName": "system-node-critical", "updateStrategy": "RollingUpdate"},
    "driver": {"enabled": True},
    "mig": {"strategy": "single"},
    "migManager": {"enabled": True, "config": {"default": "all-disabled"}, "gpuClientsConfig": {"name": ""}},
    "devicePlugin": {"enabled": True},
    "gfd": {"enabled": True},
    "dcgmExporter": {"enabled": True},
}
