"""Helpers for the agent's integration tests: a Node and simulated hosts, a stand-in for the operator's DaemonSets
(component pods that come and go with their gate labels), and the agent run in a thread or as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from kubesim.server import KubeSim
from kubesim.testing import kube_client, wait_for
from mig_manager.agent.labels import CONFIG_LABEL, GATE_LABELS, STATE_LABEL
from mig_manager.agent.main import build_agent
from mig_manager.agent.settings import Settings
from mig_manager.cli import parse_gpus
from mig_manager.devices.simulated import init_host
from mig_manager.devices.simulated_host import init_host_services
from mig_manager.planner import device_types_of_node, generate_config
from mig_manager.spec import dump_spec

ROOT = Path(__file__).resolve().parents[3]
NODE = "gpu-node-1"
NAMESPACE = "gpu-operator"
COMPONENTS = {
    "nvidia.com/gpu.deploy.device-plugin": "nvidia-device-plugin-daemonset",
    "nvidia.com/gpu.deploy.gpu-feature-discovery": "gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter": "nvidia-dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm": "nvidia-dcgm",
}
DEFAULT_GATES = {key: "true" for key in COMPONENTS}
CLIENTS = ["nvsm.service", "nvidia-dcgm.service", "dcgm-exporter.service", "failed.service", "oneshot.service"]


def core_api(sim: KubeSim) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client(sim))


def create_node(core: client.CoreV1Api, labels: Mapping[str, str], name: str = NODE) -> None:
    for ns in (NAMESPACE, "apps"):
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": dict(labels)}})


def node(core: client.CoreV1Api, name: str = NODE) -> dict[str, Any]:
    resp = core.read_node(name, _preload_content=False)
    data: dict[str, Any] = json.loads(resp.data)
    return data


def labels_of(core: client.CoreV1Api, name: str = NODE) -> dict[str, str]:
    return dict(node(core, name)["metadata"].get("labels") or {})


def annotations_of(core: client.CoreV1Api, name: str = NODE) -> dict[str, str]:
    return dict(node(core, name)["metadata"].get("annotations") or {})


def set_labels(core: client.CoreV1Api, labels: Mapping[str, str | None], name: str = NODE) -> None:
    core.patch_node(name, {"metadata": {"labels": dict(labels)}}, _content_type="application/merge-patch+json")


def wait_state(
    core: client.CoreV1Api, state: str, timeout: float = 30.0, config: str | None = None, name: str = NODE
) -> dict[str, str]:
    def check() -> dict[str, str] | None:
        try:
            obj = node(core, name)
        except (client.ApiException, OSError):  # faults injected into the API on purpose
            return None
        labels = dict(obj["metadata"].get("labels") or {})
        annotations = dict(obj["metadata"].get("annotations") or {})
        if labels.get(STATE_LABEL) != state or "nvidia.com/mig.config.journal" in annotations:
            return None
        if config is not None and labels.get(CONFIG_LABEL) != config:
            return None
        if config is not None and f"'{config}'" not in annotations.get("nvidia.com/mig.config.state.reason", ""):
            return None  # still the state of a previous config
        return labels

    return wait_for(check, timeout=timeout, what=f"state {state}")


def reason_of(core: client.CoreV1Api, name: str = NODE) -> str:
    return annotations_of(core, name).get("nvidia.com/mig.config.state.reason", "")


def events_of(core: client.CoreV1Api, name: str = NODE) -> list[tuple[str, str, str]]:
    items = json.loads(core.list_namespaced_event("default", _preload_content=False).data)["items"]
    return [
        (e["type"], e["reason"], e["message"])
        for e in items
        if e.get("involvedObject", {}).get("name") == name and e.get("involvedObject", {}).get("kind") == "Node"
    ]


def write_config(path: Path, gpus: str = "H100x8") -> Path:
    spec = generate_config(device_types_of_node(parse_gpus(gpus)))
    path.write_text(dump_spec(spec, "yaml"))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# A stand-in for the operator's DaemonSets: one pod per component whose gate is "true"


class FakeDaemonSets:
    """Watches the Node and keeps one pod per component on it while its gate label is `true` (deleting it at once
    otherwise, unless `stuck`). Records the order of gate values it saw."""

    def __init__(self, sim: KubeSim, name: str = NODE, *, stuck: bool = False, client_pod: bool = False) -> None:
        self.core = core_api(sim)
        self.name = name
        self.stuck = stuck
        self.client_pod = client_pod
        self.stop_event = threading.Event()
        self.seen: list[dict[str, str]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeDaemonSets:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()

    def pods(self) -> list[str]:
        items = json.loads(
            self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.name}", _preload_content=False
            ).data
        )["items"]
        return sorted(p["metadata"]["name"] for p in items)

    def _sync(self, labels: Mapping[str, str]) -> None:
        self.seen.append({k: v for k, v in labels.items() if k.startswith("nvidia.com/")})
        present = set(self.pods())
        wanted = dict(COMPONENTS)
        if self.client_pod:
            wanted["nvidia.com/gpu.deploy.client"] = "client-app"
        for gate, app in wanted.items():
            pod_name = f"{app}-{self.name}"
            on = labels.get(gate) == "true"
            ns = "apps" if gate.endswith(".client") else NAMESPACE
            if on and pod_name not in present:
                self._create(ns, pod_name, app, gate)
            elif not on and pod_name in present and not self.stuck:
                try:
                    self.core.delete_namespaced_pod(pod_name, ns)
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise

    def _create(self, ns: str, pod_name: str, app: str, gate: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": {"app": app},
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": app, "uid": f"uid-{app}", "controller": True}
                ],
            },
            "spec": {
                "nodeName": self.name,
                "nodeSelector": {gate: "true"},
                "containers": [{"name": "main", "image": "example"}],
            },
        }
        try:
            self.core.create_namespaced_pod(ns, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise

    def _run(self) -> None:
        rv = ""
        while not self.stop_event.is_set():
            try:
                data = json.loads(
                    self.core.list_node(field_selector=f"metadata.name={self.name}", _preload_content=False).data
                )
                rv = data["metadata"]["resourceVersion"]
                for item in data["items"]:
                    self._sync(item["metadata"].get("labels") or {})
                w = watch.Watch()
                for ev in w.stream(
                    self.core.list_node,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=rv,
                    timeout_seconds=5,
                    deserialize=False,
                ):
                    if self.stop_event.is_set():
                        return
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self._sync(ev["object"]["metadata"].get("labels") or {})
            except Exception:  # the API may be failing on purpose (fault injection): try again
                self.stop_event.wait(0.1)


# ---------------------------------------------------------------------------------------------------------------------
# The agent


@dataclass
class Node:
    """A simulated GPU node: GPU state, host services, config file, and the settings of its agent."""

    sim: KubeSim
    dir: Path
    gpus: str = "H100x8"
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.gpu_state = self.dir / "gpus.json"
        self.services = self.dir / "host-services.json"
        self.config = self.dir / "config.yaml"
        self.clients = self.dir / "clients.yaml"
        self.settings = Settings(
            node_name=NODE,
            kubeconfig=str(self.sim.kubeconfig),
            config_file=str(self.config),
            gpu_clients_file=str(self.clients),
            default_gpu_clients_namespace=NAMESPACE,
            backend="simulated",
            sim_state=str(self.gpu_state),
            host="simulated",
            sim_host_services=str(self.services),
            generated_config_file=str(self.dir / "generated.yaml"),
            pod_wait_timeout=15.0,
            service_stop_timeout=5.0,
            service_start_timeout=5.0,
            mode_change_delay=0.0,
            resync_period=60.0,
            backoff_initial=0.3,
            backoff_max=1.0,
            max_retries=5,
            config_poll_interval=0.1,
            api_timeout=5.0,
            api_retries=3,
            watch_timeout=10.0,
            metrics_port=-1,
        )

    def init(self, *, reboot_required: bool = False, units: Mapping[str, Mapping[str, Any]] | None = None) -> Node:
        init_host(self.gpu_state, self.gpus, reboot_required_for_mode_change=reboot_required)
        write_config(self.config, self.gpus)
        self.clients.write_text("version: v1\nsystemd-services:\n" + "".join(f"  - {c}\n" for c in CLIENTS))
        init_host_services(
            self.services,
            units
            if units is not None
            else {
                "nvsm.service": {"active": "active"},
                "nvidia-dcgm.service": {"active": "active"},
                "dcgm-exporter.service": {"active": "inactive", "enabled": "disabled"},
                "failed.service": {"active": "failed"},
                "oneshot.service": {"active": "active", "type": "oneshot"},
                "kubelet.service": {"active": "active"},
            },
            state_file=True,
        )
        return self

    def configure(self, **changes: Any) -> Node:
        self.settings = replace(self.settings, **changes)
        return self

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            NODE_NAME=s.node_name,
            KUBECONFIG=s.kubeconfig,
            CONFIG_FILE=s.config_file,
            GPU_CLIENTS_FILE=s.gpu_clients_file,
            DEFAULT_GPU_CLIENTS_NAMESPACE=s.default_gpu_clients_namespace,
            WITH_REBOOT=str(s.with_reboot).lower(),
            WITH_SHUTDOWN_HOST_GPU_CLIENTS=str(s.with_shutdown_host_gpu_clients).lower(),
            MIG_MANAGER_BACKEND="simulated",
            MIG_SIM_STATE=s.sim_state,
            MIG_SIM_HOST_SERVICES=s.sim_host_services,
            MIG_MANAGER_GENERATED_CONFIG_FILE=s.generated_config_file,
            MIG_MANAGER_POD_WAIT_TIMEOUT=str(s.pod_wait_timeout),
            MIG_MANAGER_MODE_CHANGE_DELAY=str(s.mode_change_delay),
            MIG_MANAGER_RESYNC_PERIOD=str(s.resync_period),
            MIG_MANAGER_BACKOFF_INITIAL=str(s.backoff_initial),
            MIG_MANAGER_BACKOFF_MAX=str(s.backoff_max),
            MIG_MANAGER_CONFIG_POLL_INTERVAL=str(s.config_poll_interval),
            MIG_MANAGER_WATCH_TIMEOUT=str(s.watch_timeout),
            MIG_MANAGER_METRICS_PORT=str(s.metrics_port),
            PYTHONPATH=os.pathsep.join(str(ROOT / d) for d in ("node-agent", "operator", "sim")),
        )
        env.pop("MIG_MANAGER_CRASH_AT", None)
        env.update(extra)
        return env


class ThreadAgent:
    """The agent in a thread of the test process."""

    def __init__(self, node: Node) -> None:
        self.agent, self.generated = build_agent(node.settings)
        self.result: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.result = self.agent.run()

    def __enter__(self) -> ThreadAgent:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self.agent.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not stop"

    def wait_exit(self, timeout: float = 30.0) -> str | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not exit"
        return self.result


def run_process(node: Node, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m mig_manager.agent` until it exits (a crash point, a reboot); kill it after `timeout`."""
    return subprocess.run(
        [sys.executable, "-m", "mig_manager.agent"],
        env=node.env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ProcessAgent:
    """The agent as a child process that runs until stopped."""

    node: Node
    env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ProcessAgent:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mig_manager.agent"],
            env=self.node.env(**self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def iter_gate_values(seen: list[dict[str, str]], gate: str) -> Iterator[str | None]:
    last: object = object()
    for labels in seen:
        value = labels.get(gate)
        if value != last:
            yield value
            last = value


def monotonic() -> float:
    return time.monotonic()


__all__ = ["DEFAULT_GATES", "GATE_LABELS"]
