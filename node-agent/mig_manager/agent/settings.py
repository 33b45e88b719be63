"""The `mig-manager` command line: NVIDIA's flags and environment variables (mig-facts 3.1), plus the backend choice,
timeouts and back-off. A flag on the command line wins over its variable."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from .errors import SettingsError

DEFAULT_STATE_FILE = "/etc/systemd/system/nvidia-mig-manager.service.d/override.conf"
DEFAULT_GENERATED_CONFIG = "/etc/nvidia-mig-manager/generated-config.yaml"
CRASH_ENV = "MIG_MANAGER_CRASH_AT"  # test only: exit abruptly when a run reaches this phase boundary


@dataclass(frozen=True)
class Settings:
    node_name: str
    kubeconfig: str = ""
    config_file: str = ""
    default_config_file: str = ""
    gpu_clients_file: str = ""
    with_reboot: bool = False
    with_shutdown_host_gpu_clients: bool = False
    default_gpu_clients_namespace: str = "default"
    host_root_mount: str = "/host"
    host_nvidia_dir: str = "/usr/local/nvidia"
    host_mig_manager_state_file: str = DEFAULT_STATE_FILE
    host_kubelet_systemd_service: str = "kubelet.service"
    cdi_enabled: bool = False
    pod_name: str = ""
    pod_namespace: str = ""
    # Additions
    backend: str = "nvml"  # nvml | simulated
    sim_state: str = ""
    host: str = "systemd"  # systemd | simulated
    sim_host_services: str = ""
    generated_config_file: str = DEFAULT_GENERATED_CONFIG
    pod_wait_timeout: float = 300.0
    service_stop_timeout: float = 30.0
    service_start_timeout: float = 120.0
    mode_change_delay: float = 30.0
    resync_period: float = 300.0
    backoff_initial: float = 5.0
    backoff_max: float = 300.0
    max_retries: int = 5
    config_poll_interval: float = 5.0
    api_timeout: float = 10.0
    api_retries: int = 3
    watch_timeout: float = 300.0
    metrics_port: int = 8080  # 0: any free port; -1: no HTTP server
    metrics_address: str = "0.0.0.0"
    log_format: str = "text"  # text | json
    debug: bool = False
    crash_at: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"{self.prog}: {message}")


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(name: str, value: str | None) -> bool:
    """Go's strconv.ParseBool, as NVIDIA's CLI library reads boolean variables; empty is false."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean; use true or false")


def _number(name: str, text: str, kind: type[float] | type[int]) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number") from None
    return value


# (dest, flags, env, kind, default, help). kind: str | bool | float | int
_OPTIONS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str, object, str], ...] = (
    ("kubeconfig", ("--kubeconfig",), ("KUBECONFIG",), "str", "", "kubeconfig file (default: in-cluster)"),
    ("node_name", ("-n", "--node-name"), ("NODE_NAME",), "str", "", "the node to manage (required)"),
    ("config_file", ("-f", "--config-file"), ("CONFIG_FILE",), "str", "", "custom mig-parted config file"),
    ("default_config_file", ("--default-config-file",), ("DEFAULT_CONFIG_FILE",), "str", "", "fallback config"),
    ("reconfigure_script", ("-s", "--reconfigure-script"), ("RECONFIGURE_SCRIPT",), "str", "", "unused (NVIDIA)"),
    ("host_root_mount", ("-m", "--host-root-mount"), ("HOST_ROOT_MOUNT",), "str", "/host", "host / mount"),
    ("host_nvidia_dir", ("-i", "--host-nvidia-dir"), ("HOST_NVIDIA_DIR",), "str", "/usr/local/nvidia", ""),
    (
        "host_mig_manager_state_file",
        ("-o", "--host-mig-manager-state-file"),
        ("HOST_MIG_MANAGER_STATE_FILE",),
        "str",
        DEFAULT_STATE_FILE,
        "host systemd drop-in that selects the config at boot",
    ),
    (
        "host_kubelet_systemd_service",
        ("-k", "--host-kubelet-systemd-service"),
        ("HOST_KUBELET_SYSTEMD_SERVICE",),
        "str",
        "kubelet.service",
        "",
    ),
    ("gpu_clients_file", ("-g", "--gpu-clients-file"), ("GPU_CLIENTS_FILE",), "str", "", "clients.yaml"),
    ("with_reboot", ("-r", "--with-reboot"), ("WITH_REBOOT",), "bool", False, "reboot if a mode change needs it"),
    (
        "with_shutdown_host_gpu_clients",
        ("-d", "--with-shutdown-host-gpu-clients"),
        ("WITH_SHUTDOWN_HOST_GPU_CLIENTS",),
        "bool",
        False,
        "stop and start the host's systemd GPU clients",
    ),
    (
        "default_gpu_clients_namespace",
        ("-p", "--default-gpu-clients-namespace"),
        ("DEFAULT_GPU_CLIENTS_NAMESPACE",),
        "str",
        "default",
        "namespace of the operator's component pods",
    ),
    ("cdi_enabled", ("--cdi-enabled",), ("CDI_ENABLED",), "bool", False, "accepted; CDI specs are not generated"),
    (
        "driver_root",
        ("-t", "--nvidia-driver-root", "--driver-root"),
        ("NVIDIA_DRIVER_ROOT", "DRIVER_ROOT"),
        "str",
        "/run/nvidia/driver",
        "CDI only",
    ),
    (
        "driver_root_ctr_path",
        ("-a", "--driver-root-ctr-path"),
        ("DRIVER_ROOT_CTR_PATH",),
        "str",
        "/run/nvidia/driver",
        "CDI only",
    ),
    ("dev_root", ("-b", "--dev-root"), ("NVIDIA_DEV_ROOT",), "str", "", "CDI only"),
    ("dev_root_ctr_path", ("-j", "--dev-root-ctr-path"), ("DEV_ROOT_CTR_PATH",), "str", "", "CDI only"),
    (
        "nvidia_cdi_hook_path",
        ("--nvidia-cdi-hook-path",),
        ("NVIDIA_CDI_HOOK_PATH",),
        "str",
        "/usr/local/nvidia/toolkit/nvidia-cdi-hook",
        "CDI only",
    ),
    ("pod_name", ("--pod-name",), ("POD_NAME",), "str", "", "this pod (owner of the generated ConfigMap)"),
    ("pod_namespace", ("--pod-namespace",), ("POD_NAMESPACE",), "str", "", "this pod's namespace"),
    (
        "backend",
        ("--backend",),
        ("MIG_MANAGER_BACKEND",),
        "str",
        "",
        "nvml | simulated (default: simulated with --sim-state)",
    ),
    ("sim_state", ("--sim-state",), ("MIG_SIM_STATE",), "str", "", "state file of a simulated GPU host"),
    ("host", ("--host",), ("MIG_MANAGER_HOST",), "str", "", "systemd | simulated (default: follows --backend)"),
    ("sim_host_services", ("--sim-host-services",), ("MIG_SIM_HOST_SERVICES",), "str", "", "simulated host units file"),
    (
        "generated_config_file",
        ("--generated-config-file",),
        ("MIG_MANAGER_GENERATED_CONFIG_FILE",),
        "str",
        DEFAULT_GENERATED_CONFIG,
        "",
    ),
    ("pod_wait_timeout", ("--pod-wait-timeout",), ("MIG_MANAGER_POD_WAIT_TIMEOUT",), "float", 300.0, "seconds"),
    (
        "service_stop_timeout",
        ("--service-stop-timeout",),
        ("MIG_MANAGER_SERVICE_STOP_TIMEOUT",),
        "float",
        30.0,
        "seconds",
    ),
    (
        "service_start_timeout",
        ("--service-start-timeout",),
        ("MIG_MANAGER_SERVICE_START_TIMEOUT",),
        "float",
        120.0,
        "seconds",
    ),
    (
        "mode_change_delay",
        ("--mode-change-delay",),
        ("MIG_MANAGER_MODE_CHANGE_DELAY",),
        "float",
        30.0,
        "seconds after stopping host services for a mode change",
    ),
    (
        "resync_period",
        ("--resync-period",),
        ("MIG_MANAGER_RESYNC_PERIOD",),
        "float",
        300.0,
        "seconds between full checks",
    ),
    ("backoff_initial", ("--backoff-initial",), ("MIG_MANAGER_BACKOFF_INITIAL",), "float", 5.0, "seconds"),
    ("backoff_max", ("--backoff-max",), ("MIG_MANAGER_BACKOFF_MAX",), "float", 300.0, "seconds"),
    ("max_retries", ("--max-retries",), ("MIG_MANAGER_MAX_RETRIES",), "int", 5, "transient failures before giving up"),
    (
        "config_poll_interval",
        ("--config-poll-interval",),
        ("MIG_MANAGER_CONFIG_POLL_INTERVAL",),
        "float",
        5.0,
        "seconds between config file checks",
    ),
    ("api_timeout", ("--api-timeout",), ("MIG_MANAGER_API_TIMEOUT",), "float", 10.0, "seconds per API request"),
    ("api_retries", ("--api-retries",), ("MIG_MANAGER_API_RETRIES",), "int", 3, "retries of a failed API request"),
    (
        "watch_timeout",
        ("--watch-timeout",),
        ("MIG_MANAGER_WATCH_TIMEOUT",),
        "float",
        300.0,
        "seconds per watch request",
    ),
    (
        "metrics_port",
        ("--metrics-port",),
        ("MIG_MANAGER_METRICS_PORT",),
        "int",
        8080,
        "/metrics, /healthz, /readyz (0: any, -1: off)",
    ),
    ("metrics_address", ("--metrics-address",), ("MIG_MANAGER_METRICS_ADDRESS",), "str", "0.0.0.0", ""),
    ("log_format", ("--log-format",), ("MIG_MANAGER_LOG_FORMAT",), "str", "text", "text | json"),
    ("debug", ("--debug",), ("MIG_MANAGER_DEBUG",), "bool", False, "debug logs"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mig-manager", description="The MIG manager node agent.")
    for dest, flags, envs, kind, _default, help_text in _OPTIONS:
        env_help = f" [{', '.join(envs)}]" if envs else ""
        if kind == "bool":
            parser.add_argument(*flags, dest=dest, action="store_true", default=None, help=help_text + env_help)
        else:
            parser.add_argument(*flags, dest=dest, default=None, help=help_text + env_help)
    return parser


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Flags, then environment variables, then defaults; raises SettingsError."""
    environ = dict(os.environ if env is None else env)
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    values: dict[str, object] = {}
    for dest, _flags, envs, kind, default, _help in _OPTIONS:
        given = getattr(args, dest)
        source = "flag"
        if given is None:
            env_name = next((e for e in envs if environ.get(e)), None)
            given = environ.get(env_name) if env_name else None
            source = env_name or ""
        if given is None:
            values[dest] = default
        elif kind == "bool":
            values[dest] = given if isinstance(given, bool) else parse_bool(source, str(given))
        elif kind == "float":
            values[dest] = float(_number(source or dest, str(given), float))
        elif kind == "int":
            values[dest] = int(_number(source or dest, str(given), int))
        else:
            values[dest] = str(given)
    if not values["node_name"]:
        raise SettingsError("the node name is required: set NODE_NAME or -n/--node-name")
    backend = str(values["backend"] or ("simulated" if values["sim_state"] else "nvml"))
    if backend not in ("nvml", "simulated"):
        raise SettingsError(f"unknown backend {backend!r}; valid: nvml, simulated")
    if backend == "simulated" and not values["sim_state"]:
        raise SettingsError("--backend simulated needs --sim-state PATH (or MIG_SIM_STATE)")
    host = str(values["host"] or ("simulated" if backend == "simulated" else "systemd"))
    if host not in ("systemd", "simulated"):
        raise SettingsError(f"unknown host {host!r}; valid: systemd, simulated")
    if values["log_format"] not in ("text", "json"):
        raise SettingsError(f"unknown log format {values['log_format']!r}; valid: text, json")
    for name in ("pod_wait_timeout", "service_stop_timeout", "service_start_timeout", "api_timeout", "watch_timeout"):
        if float(values[name]) <= 0:  # type: ignore[arg-type]
            raise SettingsError(f"--{name.replace('_', '-')} must be positive")
    extra = {
        k: str(values.pop(k))
        for k in (
            "reconfigure_script",
            "driver_root",
            "driver_root_ctr_path",
            "dev_root",
            "dev_root_ctr_path",
            "nvidia_cdi_hook_path",
        )
    }
    values["backend"] = backend
    values["host"] = host
    return Settings(crash_at=environ.get(CRASH_ENV, ""), extra=extra, **values)  # type: ignore[arg-type]
