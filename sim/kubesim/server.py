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
from kubesim.controllers.base import Controller
from kubesim.errors import KubeSimError
from kubesim.faults import FaultInjector, FaultRule, rule_from_dict
from kubesim.registry import NAMESPACES, Registry, WriteOptions
from kubesim.store import Store

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
        self.controllers: list[Controller] = []
        self._tasks: list[asyncio.Task[None]] = []
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

    async def start(self) -> None:
        if self.config.garbage_collection:
            self.controllers += [GarbageCollector(self.registry), NamespaceLifecycle(self.registry)]
        if self.config.workload_status:
            self.controllers.append(WorkloadStatus(self.registry))
        self.controllers += [factory(self.registry) for factory in self.config.extra_controllers]
        self._tasks = [asyncio.create_task(c.run()) for c in self.controllers]
        app = self.api.application()
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self.api.address = f"{self.config.host}:{self.port}"
        log.info("kubesim serving url=%s", self.url)

    async def stop(self) -> None:
        self.api.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        self.save()

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
