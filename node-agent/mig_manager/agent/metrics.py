"""Prometheus metrics (text exposition format) and the HTTP endpoints `/metrics`, `/healthz` and `/readyz`, on the
standard library's threaded HTTP server (idle: no CPU)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .labels import STATES

log = logging.getLogger("mig_manager.agent.metrics")

BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """The agent's metrics; thread-safe."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self.reconfigurations: dict[str, int] = {"success": 0, "failed": 0}
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.state = ""
        self.last_success = 0.0
        self.reboots = 0
        self.api_writes: Callable[[], int] | None = None  # the agent's Kubernetes writes so far

    def observe_run(self, result: str, seconds: float) -> None:
        with self._lock:
            self.reconfigurations[result] = self.reconfigurations.get(result, 0) + 1
            self.duration_sum += seconds
            self.duration_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[i] += 1
            if result == "success":
                self.last_success = time.time()

    def set_state(self, state: str) -> None:
        with self._lock:
            self.state = state
            if state == "success" and not self.last_success:
                self.last_success = time.time()

    def render(self) -> str:
        node = self.node.replace("\\", "\\\\").replace('"', '\\"')
        with self._lock:
            lines = [
                "# HELP mig_manager_reconfigurations_total MIG reconfigurations by result.",
                "# TYPE mig_manager_reconfigurations_total counter",
            ]
            for result, n in sorted(self.reconfigurations.items()):
                lines.append(f'mig_manager_reconfigurations_total{{node="{node}",result="{result}"}} {n}')
            lines += [
                "# HELP mig_manager_reconfiguration_duration_seconds Duration of MIG reconfigurations.",
                "# TYPE mig_manager_reconfiguration_duration_seconds histogram",
            ]
            for bound, count in zip(BUCKETS, self.bucket_counts, strict=True):
                lines.append(
                    f'mig_manager_reconfiguration_duration_seconds_bucket{{node="{node}",le="{bound:g}"}} {count}'
                )
            lines.append(
                f'mig_manager_reconfiguration_duration_seconds_bucket{{node="{node}",le="+Inf"}} {self.duration_count}'
            )
            lines.append(f'mig_manager_reconfiguration_duration_seconds_sum{{node="{node}"}} {self.duration_sum:.6f}')
            lines.append(f'mig_manager_reconfiguration_duration_seconds_count{{node="{node}"}} {self.duration_count}')
            lines += [
                "# HELP mig_manager_state The node's nvidia.com/mig.config.state (1 for the current one).",
                "# TYPE mig_manager_state gauge",
            ]
            for state in STATES:
                lines.append(f'mig_manager_state{{node="{node}",state="{state}"}} {1 if self.state == state else 0}')
            lines += [
                "# HELP mig_manager_last_success_timestamp_seconds When the node last reached success (Unix time).",
                "# TYPE mig_manager_last_success_timestamp_seconds gauge",
                f'mig_manager_last_success_timestamp_seconds{{node="{node}"}} {self.last_success:.3f}',
                "# HELP mig_manager_reboots_total Reboots requested for MIG mode changes.",
                "# TYPE mig_manager_reboots_total counter",
                f'mig_manager_reboots_total{{node="{node}"}} {self.reboots}',
            ]
            if self.api_writes is not None:
                lines += [
                    "# HELP mig_manager_api_writes_total Kubernetes API writes (patches, creates, deletes) made.",
                    "# TYPE mig_manager_api_writes_total counter",
                    f'mig_manager_api_writes_total{{node="{node}"}} {self.api_writes()}',
                ]
        return "\n".join(lines) + "\n"


class HttpServer:
    """`/metrics`, `/healthz` (the agent's loop is alive) and `/readyz` (config loaded, node watched)."""

    def __init__(
        self, metrics: Metrics, address: str, port: int, healthy: Callable[[], bool], ready: Callable[[], bool]
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, outer.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    ok = outer.healthy()
                    self._send(200 if ok else 503, "ok\n" if ok else "unhealthy\n")
                elif path == "/readyz":
                    ok = outer.ready()
                    self._send(200 if ok else 503, "ok\n" if ok else "not ready\n")
                else:
                    self._send(404, "not found\n")

            def _send(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        # A long poll interval: an idle server does not wake up; `stop` wakes it with a connection.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 3600.0}, name="mig-manager-http", daemon=True
        )
        self._address = "127.0.0.1" if address in ("", "0.0.0.0") else address

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        stopper = threading.Thread(target=self.server.shutdown, daemon=True)
        stopper.start()
        with contextlib.suppress(OSError), socket.create_connection((self._address, self.port), timeout=1.0):
            pass
        stopper.join(5.0)
        self.server.server_close()
