"""The mig-manager flags and environment variables (NVIDIA's names) and the additions."""

from __future__ import annotations

import pytest

from mig_manager.agent.errors import SettingsError
from mig_manager.agent.settings import DEFAULT_STATE_FILE, parse_bool, parse_settings


def test_defaults_follow_nvidia() -> None:
    s = parse_settings([], {"NODE_NAME": "n1"})
    assert s.node_name == "n1"
    assert s.host_root_mount == "/host"
    assert s.host_nvidia_dir == "/usr/local/nvidia"
    assert s.host_mig_manager_state_file == DEFAULT_STATE_FILE
    assert s.host_kubelet_systemd_service == "kubelet.service"
    assert s.default_gpu_clients_namespace == "default"
    assert not s.with_reboot and not s.with_shutdown_host_gpu_clients
    assert s.backend == "nvml" and s.host == "systemd"
    assert s.pod_wait_timeout == 300.0


def test_environment() -> None:
    env = {
        "NODE_NAME": "n1",
        "CONFIG_FILE": "/c.yaml",
        "DEFAULT_CONFIG_FILE": "/d.yaml",
        "GPU_CLIENTS_FILE": "/clients.yaml",
        "WITH_REBOOT": "true",
        "WITH_SHUTDOWN_HOST_GPU_CLIENTS": "1",
        "DEFAULT_GPU_CLIENTS_NAMESPACE": "gpu-operator",
        "HOST_ROOT_MOUNT": "/rootfs",
        "POD_NAME": "p",
        "POD_NAMESPACE": "ns",
        "MIG_SIM_STATE": "/s.json",
        "MIG_MANAGER_POD_WAIT_TIMEOUT": "12.5",
        "MIG_MANAGER_MAX_RETRIES": "2",
        "MIG_MANAGER_CRASH_AT": "applying",
        "DRIVER_ROOT": "/drv",
    }
    s = parse_settings([], env)
    assert (s.config_file, s.default_config_file, s.gpu_clients_file) == ("/c.yaml", "/d.yaml", "/clients.yaml")
    assert s.with_reboot and s.with_shutdown_host_gpu_clients
    assert s.default_gpu_clients_namespace == "gpu-operator"
    assert s.host_root_mount == "/rootfs"
    assert (s.pod_name, s.pod_namespace) == ("p", "ns")
    assert s.backend == "simulated" and s.host == "simulated"  # a simulated state implies both
    assert s.pod_wait_timeout == 12.5 and s.max_retries == 2
    assert s.crash_at == "applying"
    assert s.extra["driver_root"] == "/drv"


def test_flags_win_over_environment() -> None:
    s = parse_settings(
        [
            "-n",
            "flag-node",
            "-f",
            "/flag.yaml",
            "-r",
            "-d",
            "-p",
            "ns2",
            "-m",
            "/h",
            "-g",
            "/g.yaml",
            "--backend",
            "nvml",
        ],
        {"NODE_NAME": "env-node", "CONFIG_FILE": "/env.yaml"},
    )
    assert (s.node_name, s.config_file, s.default_gpu_clients_namespace, s.host_root_mount) == (
        "flag-node",
        "/flag.yaml",
        "ns2",
        "/h",
    )
    assert s.with_reboot and s.with_shutdown_host_gpu_clients and s.gpu_clients_file == "/g.yaml"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "node name is required"),
        ([], {"NODE_NAME": "n", "WITH_REBOOT": "yes"}, "WITH_REBOOT='yes' is not a boolean"),
        (["--backend", "simulated"], {"NODE_NAME": "n"}, "needs --sim-state"),
        (["--backend", "cuda"], {"NODE_NAME": "n"}, "unknown backend"),
        (["--host", "dbus"], {"NODE_NAME": "n"}, "unknown host"),
        (["--pod-wait-timeout", "x"], {"NODE_NAME": "n"}, "not a number"),
        (["--pod-wait-timeout", "0"], {"NODE_NAME": "n"}, "must be positive"),
        (["--nope"], {"NODE_NAME": "n"}, "unrecognized arguments"),
    ],
)
def test_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings(argv, env)


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("true", True), ("T", True), ("0", False), ("False", False)]
)
def test_parse_bool(value: str, expected: bool) -> None:
    assert parse_bool("X", value) is expected


def test_the_mig_manager_entry_point_exits_1_without_a_node_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mig_manager.cli import mig_manager_main

    monkeypatch.delenv("NODE_NAME", raising=False)
    assert mig_manager_main([]) == 1
    assert "the node name is required" in capsys.readouterr().err
