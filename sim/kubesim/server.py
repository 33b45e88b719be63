"""Running kubesim: the `Cluster` that lives on one event loop, and `KubeSim`, which runs it in its own thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from kubesim.api import ApiServer, PodLogs
from kubesim.controllers import GarbageCollector, NamespaceLifecycle, WorkloadStatus
from kubesim.controllers.apps import (
    DaemonSetController,
    DeploymentController,
    JobController,
    NodeLifecycleController,
    ReplicaSetController,
    Scheduler,
)
from kubesim.controllers.base import Controller
from kubesim.errors import KubeSimError
from kubesim.faults import FaultInjector, FaultRule, rule_from_dict
from kubesim.kubelet import Kubelet, KubeletSettings
from kubesim.nodes import SimNode
from kubesim.registry import NAMESPACES, Registry, WriteOptions
from kubesim.store import Store
from kubesim.topology import ImageRule, NodeSpec, Topology, default_topology, load_topology

log = logging.getLogger("kubesim")
T = TypeVar("T")

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
STATE_FILE = "state.json"
KUBECONFIG_FILE = "kubeconfig"


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 0
    state_dir: Path | None = None
    history_size: int = 10_000
    bookmark_interval: float = 5.0
    workload_status: bool = True  # the minimal status writer; part 2 replaces it with real controllers
    garbage_collection: bool = True
    fault_seed: int | None = None
    aggregated_discovery: bool = True  # answer /api and /apis with APIGroupDiscoveryList when asked
    record_requests: bool = False  # keep every request in Cluster.api.requests (see KubeSim.requests)
    extra_controllers: list[Callable[[Registry], Controller]] = field(default_factory=list)
    # The simulated cluster (part 2). With a topology ("default", a file, or a Topology), kubesim runs the real
    # controllers (DaemonSet, Deployment, ReplicaSet, Job, scheduler, node lifecycle) and a kubelet per simulated node
    # instead of the minimal workload status writer.
    topology: Topology | str | Path | None = None
    images: list[ImageRule] = field(default_factory=list)  # image rules checked before the topology's and built-ins
    reboot_seconds: float = 3.0  # how long a rebooting node stays NotReady
    gpu_poll_interval: float = 0.2  # seconds between checks of the simulated GPUs (GFD, device plugin, reboots)
    restart_backoff: float = 10.0  # first container restart back-off (doubling)
    restart_backoff_max: float = 300.0
    eviction_timeout: float = 300.0  # NoExecute toleration of pods without one (DefaultTolerationSeconds)
    run_processes: bool = True  # run this project's images as processes (else they just "run", like pause)

    def resolved_topology(self) -> Topology | None:
        if self.topology is None or isinstance(self.topology, Topology):
            return self.topology
        if str(self.topology) == "default":
            return default_topology()
        return load_topology(self.topology)


def kubeconfig_text(url: str, namespace: str = "default") -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": {"server": url}}],
        "users": [{"name": "kubesim", "user": {"token": "kubesim"}}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim", "namespace": namespace}}],
        "current-context": "kubesim",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


class Cluster:
    """Store, registry, API routes and controllers; every method runs on the loop that `start` ran on."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(history_size=config.history_size)
        self.registry = Registry(self.store)
        self.faults = FaultInjector(config.fault_seed)
        self.logs = PodLogs()
        self.api = ApiServer(
            self.registry,
            self.faults,
            self.logs,
            bookmark_interval=config.bookmark_interval,
            aggregated_discovery=config.aggregated_discovery,
            record_requests=config.record_requests,
        )
        self.controllers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.topology = config.resolved_topology()
        self.kubelet: Kubelet | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._restore()
        for name in INITIAL_NAMESPACES:
            if self.store.get(NAMESPACES, "", name) is None:
                rt = self.registry.any_type(NAMESPACES)
                assert rt is not None
                self.registry.create(
                    rt, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, WriteOptions()
                )

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def _restore(self) -> None:
        if self.config.state_dir is None:
            return
        path = self.config.state_dir / STATE_FILE
        if path.exists():
            self.store.restore(json.loads(path.read_text()))
            self.registry.restore_crds()

    def save(self) -> None:
        if self.config.state_dir is None:
            return
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.config.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.store.snapshot()))
        tmp.replace(path)

    @property
    def workdir(self) -> Path:
        """Where simulated nodes keep their state and the processes find their kubeconfig."""
        if self.config.state_dir is not None:
            return self.config.state_dir
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="kubesim-cluster-")
        return Path(self._workdir.name)

    async def start(self) -> None:
        if self.config.garbage_collection:
            self.controllers += [GarbageCollector(self.registry), NamespaceLifecycle(self.registry)]
        if self.topology is not None:
            c = self.config
            self.controllers += [
                DaemonSetController(self.registry),
                ReplicaSetController(self.registry),
                DeploymentController(self.registry),
                JobController(self.registry),
                Scheduler(self.registry),
                NodeLifecycleController(self.registry, eviction_timeout=c.eviction_timeout),
            ]
            settings = KubeletSettings(
                state_dir=self.workdir,
                kubeconfig=self.workdir / KUBECONFIG_FILE,
                image_rules=self.topology.image_rules(c.images),
                reboot_seconds=c.reboot_seconds,
                gpu_poll_interval=c.gpu_poll_interval,
                backoff_initial=c.restart_backoff,
                backoff_max=c.restart_backoff_max,
                run_processes=c.run_processes,
            )
            self.kubelet = Kubelet(self.registry, self.logs, settings)
            self.controllers.append(self.kubelet)
        elif self.config.workload_status:
            self.controllers.append(WorkloadStatus(self.registry))
        self.controllers += [factory(self.registry) for factory in self.config.extra_controllers]
        self._tasks = [asyncio.create_task(c.run()) for c in self.controllers]
        app = self.api.application()
        app.router.add_post("/kubesim/nodes/{name}/reboot", self._reboot_endpoint)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self.api.address = f"{self.config.host}:{self.port}"
        if self.kubelet is not None and self.topology is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / KUBECONFIG_FILE).write_text(kubeconfig_text(self.url))
            for spec in self.topology.nodes:
                self.kubelet.add_node(spec)
            self.kubelet.resync()
        log.info("kubesim serving url=%s", self.url)

    def add_node(self, spec: NodeSpec) -> SimNode:
        """Add a simulated node at run time (its folder, GPUs, host and Ready Node object)."""
        if self.kubelet is None:
            raise KubeSimError("simulated nodes need a topology (Config(topology=...))")
        return self.kubelet.add_node(spec)

    async def reboot_node(self, name: str, duration: float | None = None) -> None:
        if self.kubelet is None or name not in self.kubelet.nodes:
            raise KubeSimError(f"no simulated node {name!r}")
        await self.kubelet.reboot(name, apply=True, duration=duration)

    async def _reboot_endpoint(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self.kubelet is None or name not in self.kubelet.nodes:
            return web.json_response({"error": f"no simulated node {name!r}"}, status=404)
        task = asyncio.create_task(self.kubelet.reboot(name, apply=True))
        self._tasks.append(task)
        return web.json_response({"node": name, "rebooting": True}, status=202)

    async def stop(self) -> None:
        self.api.stop()
        if self.kubelet is not None:
            await self.kubelet.shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        self.save()
        if self._workdir is not None:
            self._workdir.cleanup()

    def idle(self) -> bool:
        """No controller has queued work."""
        return all(c.idle() for c in self.controllers)

    def add_fault(self, **rule: Any) -> FaultRule:
        return self.faults.add(rule_from_dict(rule))


class KubeSim:
    """A kubesim server on a free port, in its own thread and event loop.

    >>> with KubeSim() as sim:
    ...     subprocess.run(["kubectl", "--kubeconfig", str(sim.kubeconfig), "get", "ns"])
    """

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        self.config = config or Config(**overrides)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.cluster: Cluster | None = None
        self.kubeconfig: Path = Path()

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> KubeSim:
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.cluster = Cluster(self.config)
                loop.run_until_complete(self.cluster.start())
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.cluster.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="kubesim", daemon=True)
        self._thread.start()
        ready.result(timeout)
        if self.config.state_dir is not None:
            directory = self.config.state_dir
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubesim-")
            directory = Path(self._tmp.name)
        directory.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = directory / KUBECONFIG_FILE
        self.kubeconfig.write_text(kubeconfig_text(self.url))
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ access from other threads

    @property
    def url(self) -> str:
        if self.cluster is None:
            raise KubeSimError("kubesim is not running")
        return self.cluster.url

    @property
    def port(self) -> int:
        if self.cluster is None:
            raise KubeSimError("kubesim is not running")
        return self.cluster.port

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the server's loop (the only safe way to touch the store); returns its result."""
        if self._loop is None:
            raise KubeSimError("kubesim is not running")

        async def wrapper() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def _cluster(self) -> Cluster:
        if self.cluster is None:
            raise KubeSimError("kubesim is not running")
        return self.cluster

    def add_fault(self, **rule: Any) -> FaultRule:
        """Fail matching requests: verb, resource, namespace, name, action (error|drop), status, count, probability."""
        return self.call(lambda: self._cluster().add_fault(**rule))

    def clear_faults(self) -> None:
        self.call(lambda: self._cluster().faults.clear())

    def cut_watches(self, resource: str | None = None) -> int:
        """Close open watches (all, or those of `group/plural`; core resources are `/plural` or `plural`)."""

        def cut() -> int:
            gr = None
            if resource:
                group, _, plural = resource.rpartition("/")
                gr = (group, plural)
            return self._cluster().store.close_watches(gr)

        return self.call(cut)

    def append_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        self.call(lambda: self._cluster().logs.append(namespace, pod, container, text))

    def resource_version(self) -> int:
        return self.call(lambda: self._cluster().store.rv)

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path with query, status) of every request so far (needs Config(record_requests=True))."""

        def read() -> list[tuple[str, str, int]]:
            recorded = self._cluster().api.requests
            if recorded is None:
                raise KubeSimError("requests are recorded only with Config(record_requests=True)")
            return [(str(r[0]), str(r[1]), int(r[2])) for r in recorded]

        return self.call(read)

    def watcher_count(self) -> int:
        return self.call(lambda: self._cluster().store.watcher_count())

    # ------------------------------------------------------------ the simulated cluster

    def node_dir(self, name: str) -> Path:
        """A simulated node's folder: `gpus.json` (its GPUs), `host-services.json` (its host), `root/`."""
        kubelet = self._cluster().kubelet
        if kubelet is None or name not in kubelet.nodes:
            raise KubeSimError(f"no simulated node {name!r}")
        return kubelet.nodes[name].directory

    def add_node(self, spec: NodeSpec) -> None:
        self.call(lambda: self._cluster().add_node(spec))

    def reboot_node(self, name: str, duration: float | None = None, wait: bool = True, timeout: float = 60.0) -> None:
        """Reboot a simulated node (its host too: pending MIG modes apply, instances go); `wait` for it to be back."""
        if self._loop is None:
            raise KubeSimError("kubesim is not running")
        future = asyncio.run_coroutine_threadsafe(self._cluster().reboot_node(name, duration), self._loop)
        if wait:
            future.result(timeout)

    def kill_container(self, namespace: str, pod: str, container: str = "", sig: int = 9) -> int:
        """Send `sig` (default SIGKILL) to the processes of a pod's running containers (all, or `container`), as a
        crash would; the kubelet restarts them by the pod's restart policy. Returns how many were signalled."""

        def kill() -> int:
            kubelet = self._cluster().kubelet
            return 0 if kubelet is None else kubelet.kill_container(namespace, pod, container, sig)

        return self.call(kill)

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Stop (False) or start (True) a simulated node's kubelet."""

        def change() -> None:
            kubelet = self._cluster().kubelet
            if kubelet is None or name not in kubelet.nodes:
                raise KubeSimError(f"no simulated node {name!r}")
            kubelet.set_ready(name, ready)

        self.call(change)
