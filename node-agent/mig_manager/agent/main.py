"""`mig-manager`: build the agent from flags and environment and run it."""

from __future__ import annotations

import importlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..devices.base import GpuBackend
from ..devices.simulated_host import default_services_path
from ..errors import MigManagerError, SpecError
from ..spec import parse_gpu_clients
from .agent import Agent
from .errors import SettingsError, TransientError
from .host import Host, SimulatedHost, SystemdHost
from .kube import Kube
from .metrics import HttpServer, Metrics
from .settings import Settings, parse_settings
from .source import CONFIGMAP_KEY, CONFIGMAP_LABELS, NODE_NAME_LABEL, ConfigSetupError, ConfigSource, choose_config

log = logging.getLogger("mig_manager.agent")

EXIT_OK = 0
EXIT_ERROR = 1


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def read_clients_file(path: str) -> list[str]:
    """The `systemd-services` of NVIDIA's clients.yaml; no path: no services."""
    if not path:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read the GPU clients file {path}: {exc}") from None
    try:
        return parse_gpu_clients(text, f"GPU clients file {path}")
    except SpecError as exc:
        raise SettingsError(str(exc)) from None


def make_backend(settings: Settings) -> GpuBackend:
    if settings.backend == "simulated":
        simulated = importlib.import_module("mig_manager.devices.simulated")
        backend: GpuBackend = simulated.SimulatedBackend(settings.sim_state)
        return backend
    nvml = importlib.import_module("mig_manager.devices.nvml")
    backend = nvml.NvmlBackend()
    return backend


def make_host(settings: Settings) -> Host:
    if settings.host == "simulated":
        path = settings.sim_host_services or (
            str(default_services_path(settings.sim_state)) if settings.sim_state else ""
        )
        if not path:
            raise SettingsError("--host simulated needs --sim-host-services PATH or --sim-state PATH")
        return SimulatedHost(path, settings.sim_state or None)
    return SystemdHost(settings.host_root_mount)


def make_api_client(settings: Settings) -> Any:
    from kubernetes import client, config

    if settings.kubeconfig:
        return config.new_client_from_config(config_file=settings.kubeconfig)  # type: ignore[no-untyped-call]
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def publish_generated(settings: Settings, kube: Kube, path: str) -> None:
    """ConfigMap `<node>-mig-config` with the generated config, owned by this pod; a failure is only a warning."""
    if not settings.pod_name or not settings.pod_namespace:
        log.warning("POD_NAME or POD_NAMESPACE not set: not publishing the generated config")
        return
    try:
        pod = kube.get_pod(settings.pod_namespace, settings.pod_name)
        owner = {"apiVersion": "v1", "kind": "Pod", "name": settings.pod_name, "uid": pod["metadata"]["uid"]}
        kube.apply_configmap(
            settings.pod_namespace,
            f"{settings.node_name}-mig-config",
            {**CONFIGMAP_LABELS, NODE_NAME_LABEL: settings.node_name},
            {CONFIGMAP_KEY: Path(path).read_text(encoding="utf-8")},
            owner,
        )
        log.info(
            "published the generated config as configmap %s/%s-mig-config", settings.pod_namespace, settings.node_name
        )
    except (TransientError, OSError, KeyError) as exc:
        log.warning("could not publish the generated config: %s", exc)


def build_agent(settings: Settings, api_client: Any = None) -> tuple[Agent, bool]:
    """The agent and whether its config was generated (raises SettingsError, ConfigSetupError, MigManagerError)."""
    clients = read_clients_file(settings.gpu_clients_file)
    backend = make_backend(settings)
    host = make_host(settings)
    if settings.cdi_enabled:
        log.warning("CDI_ENABLED is set: this agent does not generate the management CDI spec")
    path, generated = choose_config(
        settings.config_file, settings.default_config_file, settings.generated_config_file, backend
    )
    kube = Kube(
        api_client if api_client is not None else make_api_client(settings),
        settings.node_name,
        request_timeout=settings.api_timeout,
        retries=settings.api_retries,
    )
    if generated:
        publish_generated(settings, kube, path)
    metrics = Metrics(settings.node_name)
    metrics.api_writes = lambda: kube.writes
    agent = Agent(settings, kube, backend, host, ConfigSource(path), clients=clients, metrics=metrics)
    return agent, generated


def run_agent(agent: Agent) -> str:
    """Run with the HTTP endpoints (unless disabled)."""
    s = agent.settings
    server: HttpServer | None = None
    if s.metrics_port >= 0:
        try:
            server = HttpServer(agent.metrics, s.metrics_address, s.metrics_port, agent.healthy, agent.ready.is_set)
        except OSError as exc:  # e.g. the port is taken on a hostNetwork pod: the node matters more than metrics
            log.error("cannot serve /metrics on %s:%d (%s); running without", s.metrics_address, s.metrics_port, exc)
        else:
            server.start()
            agent.http_port = server.port
            log.info("serving /metrics, /healthz, /readyz on %s:%d", s.metrics_address, server.port)
    try:
        return agent.run()
    finally:
        if server is not None:
            threading.Thread(target=server.stop, daemon=True).start()


def mig_manager_main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    setup_logging(settings)
    try:
        agent, _ = build_agent(settings)
    except (SettingsError, ConfigSetupError, MigManagerError) as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except Exception as exc:  # the API client (kubeconfig, in-cluster config) raises its own errors
        log.error("cannot start: %s", exc)
        return EXIT_ERROR

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping (a run in progress is finished with the gates restored)", signum)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    result = run_agent(agent)
    log.info("exiting: %s", result)
    return EXIT_OK
