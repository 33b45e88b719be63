"""Prometheus metrics in the text exposition format, and the HTTP endpoints `/metrics`, `/healthz` and `/readyz`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

log = logging.getLogger("gpu_operator.metrics")

PREFIX = "gpu_operator"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + inner + "}"


@dataclass
class Metrics:
    """Counters and gauges of the operator; thread-safe."""

    counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self, name: str, text: str) -> None:
        self.help[name] = text

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self.counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self.gauges.setdefault(name, {})[key] = value

    def value(self, name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self.counters.get(name, {}).get(key, self.gauges.get(name, {}).get(key, 0.0))

    def exposition(self) -> str:
        lines: list[str] = []
        with self._lock:
            for kind, table in (("counter", self.counters), ("gauge", self.gauges)):
                for name in sorted(table):
                    full = f"{PREFIX}_{name}"
                    if name in self.help:
                        lines.append(f"# HELP {full} {self.help[name]}")
                    lines.append(f"# TYPE {full} {kind}")
                    for labels, value in sorted(table[name].items()):
                        lines.append(f"{full}{_labels(labels)} {value:g}")
        return "\n".join(lines) + "\n"


def default_metrics() -> Metrics:
    m = Metrics()
    m.describe("reconciles_total", "Reconciles of the ClusterPolicy by result.")
    m.describe("reconcile_duration_seconds_sum", "Total time spent reconciling.")
    m.describe("writes_total", "Write requests sent to the API server, by verb.")
    m.describe("node_label_writes_total", "Node label patches.")
    m.describe("objects_applied_total", "Objects applied (server-side apply).")
    m.describe("objects_pruned_total", "Objects of disabled components deleted.")
    m.describe("clusterpolicy_ready", "1 when the active ClusterPolicy is ready.")
    m.describe("gpu_nodes", "Nodes labelled nvidia.com/gpu.present=true.")
    m.describe("is_leader", "1 while this replica holds the leader lease.")
    return m


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "0.0.0.0", int(port)


class HttpEndpoints:
    """Serves `/metrics` on one address and `/healthz` and `/readyz` on another, from a thread of its own."""

    def __init__(
        self,
        metrics: Metrics,
        metrics_address: str,
        health_address: str,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self.metrics = metrics
        self.metrics_address = metrics_address
        self.health_address = health_address
        self.healthy = healthy
        self.ready = ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.ports: dict[str, int] = {}

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(text=self.metrics.exposition(), content_type="text/plain", charset="utf-8")

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = self.healthy()
        return web.Response(text="ok" if ok else "unhealthy", status=200 if ok else 500)

    async def _readyz(self, _: web.Request) -> web.Response:
        ok = self.ready()
        return web.Response(text="ok" if ok else "not ready", status=200 if ok else 500)

    async def _serve(self) -> list[web.AppRunner]:
        runners = []
        plan: list[tuple[str, str, list[tuple[str, Callable[[web.Request], object]]]]] = []
        if self.metrics_address:
            plan.append(("metrics", self.metrics_address, [("/metrics", self._metrics)]))
        if self.health_address:
            plan.append(("health", self.health_address, [("/healthz", self._healthz), ("/readyz", self._readyz)]))
        for name, address, routes in plan:
            app = web.Application()
            for path, handler in routes:
                app.router.add_get(path, handler)  # type: ignore[arg-type]
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            host, port = _split(address)
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.ports[name] = int(sockets[0].getsockname()[1]) if sockets else port
            runners.append(runner)
        return runners

    def start(self) -> None:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                runners = loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starter
                errors.append(exc)
                started.set()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                for runner in runners:
                    loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="gpu-operator-http", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
