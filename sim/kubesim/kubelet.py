"""The simulated kubelet of every simulated node: it runs the pods bound to its node, reports their status, honours
the grace period on deletion, restarts containers with back-off, keeps ConfigMap and Secret volumes up to date, and
reboots its node.

Containers run by image (kubesim.topology rules): this project's images (node agent, operator, `process`) as local
processes; NVIDIA's GPU feature discovery and device plugin emulated over the node's simulated GPUs (kubesim.gpus);
anything else (DCGM, DCGM exporter, unknown images) as a container that just runs, or, in a pod that is not restarted,
exits 0 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubesim import gpus
from kubesim.api import PodLogs
from kubesim.controllers.reconciler import CONFIGMAPS, NODES, PODS, SECRETS, Reconciler, active, terminating
from kubesim.nodes import SimNode, reboot_host
from kubesim.registry import Registry
from kubesim.runner import PodFiles, Process
from kubesim.store import Event
from kubesim.topology import ImageRule, NodeSpec, image_kind

log = logging.getLogger("kubesim.kubelet")

FEATURE_LABELS = "nfd.node.kubernetes.io/feature-labels"  # NFD's record of the labels it manages on a node
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."


@dataclass
class KubeletSettings:
    state_dir: Path
    kubeconfig: Path
    image_rules: list[ImageRule] = field(default_factory=list)
    reboot_seconds: float = 3.0
    gpu_poll_interval: float = 0.2
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    run_processes: bool = True


class Runtime(Protocol):
    async def run(self) -> int: ...

    async def terminate(self, grace: float) -> None: ...


# ---------------------------------------------------------------------------------------------------------------------
# Container runtimes


class Idle:
    """A container that runs until stopped (DCGM, DCGM exporter, images kubesim does not know); in a pod that is not
    restarted it exits 0 at once."""

    def __init__(self, forever: bool) -> None:
        self.forever = forever
        self._stop = asyncio.Event()

    async def run(self) -> int:
        if self.forever:
            await self._stop.wait()
        return 0

    async def terminate(self, grace: float) -> None:
        self._stop.set()


class ProcessRuntime:
    def __init__(self, process: Process) -> None:
        self.process = process

    async def run(self) -> int:
        return await self.process.run()

    async def terminate(self, grace: float) -> None:
        await self.process.terminate(grace)


def _strategy(env: dict[str, str], args: list[str]) -> str:
    strategy = env.get("MIG_STRATEGY", "")
    for i, arg in enumerate(args):
        if arg.startswith("--mig-strategy="):
            strategy = arg.split("=", 1)[1]
        elif arg == "--mig-strategy" and i + 1 < len(args):
            strategy = args[i + 1]
    return strategy or "none"


class Emulated:
    """GFD or the device plugin: reacts to every change of its node's GPUs until stopped."""

    def __init__(self, kubelet: Kubelet, worker: PodWorker, container: dict[str, Any], kind: str) -> None:
        self.kubelet = kubelet
        self.worker = worker
        self.container = container
        self.kind = kind
        self.wake = asyncio.Event()
        self.stopped = False

    def log(self, line: str) -> None:
        self.worker.log(str(self.container.get("name")), line)

    async def run(self) -> int:
        node = self.worker.node
        env = self.worker.files.environment(self.kubelet.store, self.container) if self.worker.files else {}
        strategy = _strategy(env, [str(a) for a in self.container.get("args") or []])
        what = "gpu-feature-discovery" if self.kind == "gfd" else "nvidia-device-plugin"
        self.log(f"Starting {what} (kubesim emulation) on node {node.name} with MIG_STRATEGY={strategy}")
        if strategy not in gpus.STRATEGIES:
            self.log(f"Error: invalid MIG strategy {strategy!r}: must be one of none, single, mixed")
            return 1
        self.kubelet.subscribe(node.name, self.wake)
        try:
            while not self.stopped:
                self.wake.clear()
                self.kubelet.refresh_gpus(node)  # never act on a stale snapshot (the poll may not have run yet)
                if self.kind == "gfd":
                    if self.kubelet.apply_gfd_labels(node, strategy):
                        self.log("Labels updated")
                else:
                    try:
                        resources = gpus.device_plugin_resources(node.gpu_state, strategy)
                    except gpus.InvalidMigConfig as exc:
                        self.log(f"Error: {exc}")
                        self.kubelet.set_plugin_resources(node, {}, registered=False)
                        return 1
                    if self.kubelet.set_plugin_resources(node, resources, registered=True):
                        shown = ", ".join(f"{k}={v}" for k, v in sorted(resources.items())) or "none"
                        self.log(f"Registered device plugin resources with the kubelet: {shown}")
                await self.wake.wait()
        finally:
            self.kubelet.unsubscribe(node.name, self.wake)
            if self.kind == "plugin":
                self.kubelet.set_plugin_resources(node, {}, registered=False)
        return 0

    async def terminate(self, grace: float) -> None:
        self.stopped = True
        self.wake.set()


# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ContainerState:
    name: str
    image: str
    restart_count: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    runtime: Runtime | None = None
    exit_code: int | None = None

    def status(self, uid: str) -> dict[str, Any]:
        result: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if "waiting" not in self.state or self.restart_count:
            result["containerID"] = f"containerd://{uid.replace('-', '')[:12]}{self.name[:8]}{self.restart_count}"
        return result


class PodWorker:
    """The containers of one pod on one node."""

    def __init__(self, kubelet: Kubelet, node: SimNode, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.node = node
        meta = pod["metadata"]
        self.namespace = str(meta.get("namespace", ""))
        self.name = str(meta["name"])
        self.uid = str(meta.get("uid", ""))
        self.pod = pod
        spec = pod.get("spec") or {}
        self.policy = str(spec.get("restartPolicy") or "Always")
        previous = {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}
        self.init = [
            ContainerState(str(c.get("name")), str(c.get("image", ""))) for c in spec.get("initContainers") or []
        ]
        self.main = []
        for c in spec.get("containers") or []:
            state = ContainerState(str(c.get("name")), str(c.get("image", "")))
            before = previous.get(c.get("name"))
            if before is not None:  # the kubelet (kubesim) restarted: the container starts again
                state.restart_count = int(before.get("restartCount", 0)) + (
                    1 if before.get("state", {}).get("running") else 0
                )
            self.main.append(state)
        self.initialized = not self.init
        self.sources = asyncio.Event()
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self.files: PodFiles | None = None
        self.start_time = str((pod.get("status") or {}).get("startTime") or kubelet.registry.clock())
        host_network = bool(spec.get("hostNetwork"))
        self.pod_ip = node.ip if host_network else str((pod.get("status") or {}).get("podIP") or node.next_pod_ip())

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def folder(self) -> Path:
        return self.node.directory / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"

    def log(self, container: str, line: str) -> None:
        self.kubelet.logs.append(self.namespace, self.name, container, line)

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        self.files = PodFiles(
            self.folder, self.node.root, self.pod, self.kubelet.settings.kubeconfig, self.node.ip, self.pod_ip
        )
        spec = self.pod.get("spec") or {}
        everything = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        while (problem := self.files.missing(self.kubelet.store, everything)) is not None:
            reason, message = problem
            for state in [*self.init, *self.main]:
                state.state = {"waiting": {"reason": reason, "message": message}}
            self.publish()
            self.sources.clear()
            await self.sources.wait()  # set when a ConfigMap or Secret of this namespace is written
        for state in [*self.init, *self.main]:
            state.state = {"waiting": {"reason": "ContainerCreating"}}
        self.files.materialise(self.kubelet.store)
        self.publish()
        for container, state in zip(spec.get("initContainers") or [], self.init, strict=False):
            code = await self.container_loop(container, state, init=True)
            if code != 0:
                self.publish()
                return
        self.initialized = True
        await asyncio.gather(
            *(
                self.container_loop(c, s, init=False)
                for c, s in zip(spec.get("containers") or [], self.main, strict=False)
            )
        )
        self.publish()

    async def container_loop(self, container: dict[str, Any], state: ContainerState, init: bool) -> int:
        backoff = self.kubelet.settings.backoff_initial
        while True:
            if state.restart_count and state.last_state:
                self.kubelet.logs.restarted(self.namespace, self.name, state.name)
            runtime = self.kubelet.runtime(self, container, init)
            state.runtime = runtime
            started = self.kubelet.registry.clock()
            state.state = {"running": {"startedAt": started}}
            state.started = True
            state.ready = not init
            self.publish()
            code = await runtime.run()
            state.ready = False
            state.exit_code = code
            term = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": self.kubelet.registry.clock(),
                "containerID": state.status(self.uid).get("containerID", ""),
            }
            if self.stopping:
                state.state = {"terminated": term}
                return code
            restart = self.policy == "Always" if not init else False
            if self.policy in ("Always", "OnFailure") and code != 0:
                restart = True
            if not restart:
                state.state = {"terminated": term}
                state.started = False
                self.publish()
                return code
            state.last_state = {"terminated": term}
            state.restart_count += 1
            state.started = False
            state.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {backoff:g}s restarting failed container={state.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                }
            }
            self.publish()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.kubelet.settings.backoff_max)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        runtimes = [s.runtime for s in [*self.init, *self.main] if s.runtime is not None]
        await asyncio.gather(*(r.terminate(grace) for r in runtimes), return_exceptions=True)
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def status(self, previous: dict[str, Any]) -> dict[str, Any]:
        now = self.kubelet.registry.clock()
        states = self.main
        running = any("running" in s.state for s in states)
        finished = all("terminated" in s.state for s in states) and bool(states)
        init_failed = (
            any("terminated" in s.state and s.state["terminated"].get("exitCode") != 0 for s in self.init)
            and self.policy == "Never"
        )
        if init_failed or (finished and any(s.exit_code for s in states)):
            phase = "Failed"
        elif finished:
            phase = "Succeeded"
        elif running or (self.initialized and any(s.restart_count for s in states)):
            phase = "Running"
        else:
            phase = "Pending"
        ready = bool(states) and all(s.ready for s in states) and phase == "Running"
        old = {c.get("type"): c for c in previous.get("conditions") or []}

        def cond(kind: str, value: bool, reason: str = "") -> dict[str, Any]:
            text = "True" if value else "False"
            before = old.get(kind) or {}
            result: dict[str, Any] = {
                "type": kind,
                "status": text,
                "lastProbeTime": None,
                "lastTransitionTime": before.get("lastTransitionTime", now) if before.get("status") == text else now,
            }
            if reason and not value:
                result["reason"] = reason
            return result

        done = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", self.initialized, "ContainersNotInitialized"),
                cond("Ready", ready, done),
                cond("ContainersReady", ready, done),
                cond("PodScheduled", True),
            ],
            "hostIP": self.node.ip,
            "hostIPs": [{"ip": self.node.ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "qosClass": previous.get("qosClass", "BestEffort"),
            "containerStatuses": [s.status(self.uid) for s in states],
        }
        if self.init:
            status["initContainerStatuses"] = [s.status(self.uid) for s in self.init]
        return status

    def publish(self) -> None:
        current = self.kubelet.store.get(PODS, self.namespace, self.name)
        if current is None or str(current.obj["metadata"].get("uid")) != self.uid or self.stopping:
            return
        self.kubelet.write_status(PODS, current, self.status(current.obj.get("status") or {}))


# ---------------------------------------------------------------------------------------------------------------------


class Kubelet(Reconciler):
    """The kubelets of all simulated nodes (one controller on the server's loop)."""

    watches = frozenset({PODS, CONFIGMAPS, SECRETS})

    def __init__(self, registry: Registry, logs: PodLogs, settings: KubeletSettings) -> None:
        super().__init__(registry)
        self.logs = logs
        self.settings = settings
        self.nodes: dict[str, SimNode] = {}
        self.workers: dict[tuple[str, str], PodWorker] = {}
        self._subscribers: dict[str, set[asyncio.Event]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._rebooting: set[str] = set()

    # ------------------------------------------------------------ nodes

    def add_node(self, spec: NodeSpec) -> SimNode:
        """Create a simulated node: its folder (GPUs, host units, root) and its Node object, Ready."""
        node = SimNode(spec, self.settings.state_dir / "nodes" / spec.name, index=len(self.nodes))
        node.prepare()
        self.nodes[spec.name] = node
        rt = self.registry.any_type(NODES)
        assert rt is not None
        current = self.store.get(NODES, "", spec.name)
        obj = node.node_object()
        if current is None:
            obj["status"] = node.status(self.registry.clock())
            self.create(NODES, "", obj)
        else:  # restored from a saved state: keep what others wrote, report Ready again
            node.boots = 1 + int(
                str((current.obj.get("status") or {}).get("nodeInfo", {}).get("bootID", "sim-boot-0")).rsplit("-", 1)[
                    -1
                ]
                or 0
            )
            self.write_node_status(node)
        return node

    def write_node_status(self, node: SimNode, reason: str = "") -> None:
        current = self.store.get(NODES, "", node.name)
        if current is None:
            return
        self.write_status(NODES, current, node.status(self.registry.clock(), current.obj.get("status") or {}, reason))

    def subscribe(self, node: str, wake: asyncio.Event) -> None:
        self._subscribers.setdefault(node, set()).add(wake)

    def unsubscribe(self, node: str, wake: asyncio.Event) -> None:
        self._subscribers.get(node, set()).discard(wake)

    def notify(self, node: str) -> None:
        for wake in list(self._subscribers.get(node, ())):
            wake.set()

    def apply_gfd_labels(self, node: SimNode, strategy: str) -> bool:
        """Publish GFD's labels (NFD removes those it published before and no longer gets); True if they changed."""
        current = self.store.get(NODES, "", node.name)
        if current is None:
            return False
        info = gpus.HostInfo(node.spec.driver_version, node.spec.cuda_version, node.spec.machine)
        wanted = gpus.gfd_labels(node.gpu_state, strategy, info, now=int(time.time()))
        meta = current.obj["metadata"]
        labels = dict(meta.get("labels") or {})
        owned = [k for k in str((meta.get("annotations") or {}).get(FEATURE_LABELS, "")).split(",") if k]
        stamp = "nvidia.com/gfd.timestamp"
        same = all(labels.get(k) == v for k, v in wanted.items() if k != stamp) and set(owned) == set(wanted)
        if same and stamp in labels:
            return False
        for key in owned:
            if key not in wanted:
                labels.pop(key, None)
        labels.update(wanted)
        obj = current.copy()
        obj["metadata"].pop("resourceVersion", None)
        obj["metadata"]["labels"] = labels
        obj["metadata"].setdefault("annotations", {})[FEATURE_LABELS] = ",".join(sorted(wanted))
        return self.write(NODES, obj) is not None

    def set_plugin_resources(self, node: SimNode, resources: dict[str, int], registered: bool) -> bool:
        """The device plugin's resources in the node's capacity and allocatable. Resources it advertised before and
        no longer does go to 0; an unregistered plugin leaves its capacity and zero allocatable (as the kubelet)."""
        current = self.store.get(NODES, "", node.name)
        if current is None:
            return False
        status = current.copy().get("status") or {}
        capacity = dict(status.get("capacity") or {})
        allocatable = dict(status.get("allocatable") or {})
        for key in [k for k in capacity if k.startswith("nvidia.com/")]:
            if not registered:
                allocatable[key] = "0"
            elif key not in resources:
                capacity[key] = allocatable[key] = "0"
        if registered:
            for key, count in resources.items():
                capacity[key] = allocatable[key] = str(count)
        status["capacity"], status["allocatable"] = capacity, allocatable
        if status == (current.obj.get("status") or {}):
            return False
        self.write_status(NODES, current, status)
        return True

    # ------------------------------------------------------------ runtimes

    def runtime(self, worker: PodWorker, container: dict[str, Any], init: bool = False) -> Runtime:
        rule = image_kind(str(container.get("image", "")), self.settings.image_rules)
        kind = rule.kind
        if kind == "nvidia-device-plugin":
            command = " ".join(str(c) for c in container.get("command") or [])
            name = str(container.get("name", ""))
            kind = "gpu-feature-discovery" if "feature-discovery" in command + name else "device-plugin"
        if kind == "gpu-feature-discovery":
            return Emulated(self, worker, container, "gfd")
        if kind == "device-plugin":
            return Emulated(self, worker, container, "plugin")
        if kind in ("node-agent", "operator", "process") and self.settings.run_processes and worker.files is not None:
            return ProcessRuntime(self._process(worker, container, rule))
        return Idle(forever=worker.policy == "Always" and not init)  # init containers run to completion

    def _process(self, worker: PodWorker, container: dict[str, Any], rule: ImageRule) -> Process:
        files = worker.files
        assert files is not None
        name = str(container.get("name"))
        own = files.container_root(name)
        env = files.environment(self.store, container)
        argv = files.argv(container, env, rule.entrypoint)
        mounts = files.mounts(container)
        base = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(own),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "HOSTNAME": worker.name,
        }
        env = {**base, **env, "KUBECONFIG": str(self.settings.kubeconfig)}
        if rule.kind == "node-agent":
            if worker.node.has_gpus:
                env.setdefault("MIG_SIM_STATE", str(worker.node.gpu_path))
            env.setdefault("MIG_SIM_HOST_SERVICES", str(worker.node.services_path))
            env.setdefault(
                "HOST_ROOT_MOUNT",
                files.translate("/host", mounts) if any(m == "/host" for m, _ in mounts) else str(worker.node.root),
            )
            generated = own / "etc" / "nvidia-mig-manager" / "generated-config.yaml"
            generated.parent.mkdir(parents=True, exist_ok=True)
            env.setdefault("MIG_MANAGER_GENERATED_CONFIG_FILE", str(generated))
            env.setdefault("MIG_MANAGER_METRICS_PORT", "0")
        if rule.kind == "operator" and "run" in argv:
            argv = _any_port(argv, "--metrics-bind-address")
            argv = _any_port(argv, "--health-probe-bind-address")
        return Process(argv, env, own, lambda line: worker.log(name, line))

    # ------------------------------------------------------------ pods

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.gr == PODS:
            node = (event.new.obj.get("spec") or {}).get("nodeName")
            if node in self.nodes or (event.new.namespace, event.new.name) in self.workers:
                return [("pod", event.new.namespace, event.new.name)]
            return []
        if event.type == "DELETED":
            return []
        return [("source", event.gr, event.new.namespace, event.new.name)]

    def resync(self) -> None:
        for stored in self.store.items(PODS):
            if (stored.obj.get("spec") or {}).get("nodeName") in self.nodes:
                self.enqueue(("pod", stored.namespace, stored.name))

    def reconcile(self, key: Any) -> None:
        if key[0] == "source":
            _, gr, namespace, name = key
            for each in self.workers.values():
                if each.namespace == namespace:
                    each.sources.set()
                    if each.files is not None:
                        each.files.refresh(self.store, gr, name)
            return
        _, namespace, name = key
        current = self.store.get(PODS, namespace, name)
        worker = self.workers.get((namespace, name))
        if worker is not None and (current is None or str(current.obj["metadata"].get("uid")) != worker.uid):
            self._spawn(self._finish(worker, grace=1.0, delete=False))
            return
        if current is None:
            return
        pod = current.obj
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName")))
        if node is None or not node.ready:
            return
        if terminating(pod):
            grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            if worker is None:
                self._delete_now(namespace, name)
            elif not worker.stopping:
                self._spawn(self._finish(worker, grace=grace, delete=True))
            return
        if worker is None and active(pod):
            started = PodWorker(self, node, pod)
            self.workers[started.key] = started
            started.start()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def idle(self) -> bool:
        return super().idle() and not self._background

    async def _finish(self, worker: PodWorker, grace: float, delete: bool) -> None:
        if worker.stopping:
            return
        await worker.stop(grace)
        if self.workers.get(worker.key) is worker:
            del self.workers[worker.key]
        current = self.store.get(PODS, worker.namespace, worker.name)
        if delete and current is not None and str(current.obj["metadata"].get("uid")) == worker.uid:
            self._delete_now(worker.namespace, worker.name)
        self._cleanup(worker)

    def _cleanup(self, worker: PodWorker) -> None:
        if (worker.namespace, worker.name) not in self.workers:
            self.logs.forget(worker.namespace, worker.name)
        shutil.rmtree(worker.folder, ignore_errors=True)

    def _delete_now(self, namespace: str, name: str) -> None:
        self.delete(PODS, namespace, name, {"gracePeriodSeconds": 0})

    # ------------------------------------------------------------ GPUs and reboots

    async def run(self) -> None:
        poller = asyncio.create_task(self._poll_gpus())
        try:
            await super().run()
        finally:
            poller.cancel()

    async def _poll_gpus(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gpu_poll_interval)
            for node in list(self.nodes.values()):
                self.refresh_gpus(node)

    def refresh_gpus(self, node: SimNode) -> None:
        """Re-read a node's GPUs when their file changed: wake GFD and the device plugin, notice host reboots."""
        if not node.has_gpus or not node.gpus_changed():
            return
        state = node.read_gpus()
        reboots = int(state.get("counters", {}).get("reboots", 0))
        if reboots > node.reboots_seen:
            node.reboots_seen = reboots
            if node.name not in self._rebooting:
                log.info("node %s: its host rebooted (requested through the simulated host)", node.name)
                self._spawn(self.reboot(node.name, apply=False))
        self.notify(node.name)

    async def reboot(self, name: str, apply: bool = True, duration: float | None = None) -> None:
        """Reboot a node: NotReady, its pods end (Failed, as on a node shutdown), the host reboots (pending MIG modes
        apply, every MIG instance is gone; `apply=False` when the host already did), then Ready again."""
        node = self.nodes[name]
        if name in self._rebooting:
            return
        self._rebooting.add(name)
        try:
            node.ready = False
            self.write_node_status(node, "node is rebooting")
            workers = [w for w in self.workers.values() if w.node is node]
            await asyncio.gather(*(w.stop(0.5) for w in workers))
            for worker in workers:
                self.workers.pop(worker.key, None)
                self._mark_shut_down(worker)
                self._cleanup(worker)
            for stored in self.store.items(PODS):
                if (stored.obj.get("spec") or {}).get("nodeName") == name and terminating(stored.obj):
                    self._delete_now(stored.namespace, stored.name)
            if apply:
                await asyncio.to_thread(reboot_host, node)
            if node.has_gpus:
                state = node.read_gpus()
                node.reboots_seen = int(state.get("counters", {}).get("reboots", 0))
            self.notify(name)
            await asyncio.sleep(self.settings.reboot_seconds if duration is None else duration)
            node.boots += 1
            node.ready = True
            self.write_node_status(node)
        finally:
            self._rebooting.discard(name)
        self.resync()

    def set_ready(self, name: str, ready: bool) -> None:
        """Stop or start a node's kubelet: NotReady nodes run nothing new (their pods are handled by the node
        lifecycle controller)."""
        node = self.nodes[name]
        node.ready = ready
        self.write_node_status(node, "" if ready else "kubelet stopped posting node status")
        if ready:
            self.resync()

    def kill_container(self, namespace: str, pod: str, container: str = "", sig: int = 9) -> int:
        """Signal the running processes of a pod's containers (all, or the named one), as a crash or an OOM kill would;
        the pod's restart policy decides what follows. Returns how many processes were signalled."""
        worker = self.workers.get((namespace, pod))
        if worker is None:
            return 0
        hit = 0
        for state in [*worker.init, *worker.main]:
            runtime = state.runtime
            if (container and state.name != container) or not isinstance(runtime, ProcessRuntime):
                continue
            proc = runtime.process.proc
            if proc is not None and proc.returncode is None:
                runtime.process.signal(sig)
                hit += 1
        return hit

    def _mark_shut_down(self, worker: PodWorker) -> None:
        current = self.store.get(PODS, worker.namespace, worker.name)
        if current is None or str(current.obj["metadata"].get("uid")) != worker.uid:
            return
        status = worker.status(current.obj.get("status") or {})
        now = self.registry.clock()
        for state in status["containerStatuses"]:
            if "terminated" not in state["state"]:
                state["state"] = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now}}
            state["ready"] = False
            state["started"] = False
        for cond in status["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond.update(status="False", reason="PodFailed", lastTransitionTime=now)
        status.update(phase="Failed", reason="Terminated", message=SHUTDOWN_MESSAGE)
        self.write_status(PODS, current, status)

    async def shutdown(self) -> None:
        """Stop every container (SIGTERM, then SIGKILL after 2 s): kubesim leaves no process behind."""
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.stop(2.0) for w in workers), return_exceptions=True)
        for task in list(self._background):
            task.cancel()


def _any_port(argv: list[str], flag: str) -> list[str]:
    """Processes share the host's network: bind addresses get a free port on localhost."""
    out: list[str] = []
    found = False
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
            out += [flag, "127.0.0.1:0" if value else value]
            found, skip = True, True
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
            out.append(f"{flag}=127.0.0.1:0" if value else arg)
            found = True
        else:
            out.append(arg)
    if not found:
        out.append(f"{flag}=127.0.0.1:0")
    return out
