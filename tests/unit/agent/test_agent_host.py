"""Host GPU clients: NVIDIA's stop rules, the order of restarts, systemd through chroot, and the simulated host."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from mig_manager.agent.errors import HostError
from mig_manager.agent.host import (
    SimulatedHost,
    StopAction,
    SystemdHost,
    UnitState,
    drop_in_text,
    restart_order,
    services_to_stop,
    stop_decision,
)
from mig_manager.devices.simulated import init_host, read_state
from mig_manager.devices.simulated_host import default_services_path, init_host_services, read_host_services


@pytest.mark.parametrize(
    ("unit", "action"),
    [
        (UnitState("a", load="not-found"), StopAction.SKIP),
        (UnitState("a", active="active", type="oneshot"), StopAction.SKIP),
        (UnitState("a", active="active"), StopAction.STOP),
        (UnitState("a", active="activating"), StopAction.STOP),
        (UnitState("a", active="active", enabled="disabled"), StopAction.STOP),
        (UnitState("a", active="failed"), StopAction.REMEMBER),
        (UnitState("a", active="failed", enabled="disabled"), StopAction.REMEMBER),
        (UnitState("a", active="inactive", enabled="disabled"), StopAction.SKIP),
        (UnitState("a", active="inactive", enabled="masked"), StopAction.SKIP),
        (UnitState("a", active="inactive", enabled="enabled"), StopAction.REMEMBER),
        (UnitState("a", active="inactive", enabled="static"), StopAction.SKIP),
    ],
)
def test_stop_rules(unit: UnitState, action: StopAction) -> None:
    assert stop_decision(unit)[0] is action


def test_kubelet_is_added_only_for_a_mode_change_and_restart_is_reversed() -> None:
    clients = ["a.service", "b.service", "a.service"]
    assert services_to_stop(clients, False, "kubelet.service") == ["a.service", "b.service"]
    assert services_to_stop(clients, True, "kubelet.service") == ["a.service", "b.service", "kubelet.service"]
    assert restart_order(["a", "b", "kubelet"]) == ["kubelet", "b", "a"]


class FakeRunner:
    def __init__(self, outputs: dict[str, tuple[int, str]] | None = None, timeout: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.outputs = outputs or {}
        self.timeout = timeout

    def __call__(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.timeout:
            raise subprocess.TimeoutExpired(list(argv), timeout)
        code, out = self.outputs.get(
            argv[-1] if argv[-1] != "--property=LoadState,ActiveState,UnitFileState,Type" else argv[-2], (0, "")
        )
        return subprocess.CompletedProcess(list(argv), code, out, "boom" if code else "")


def test_systemd_host_runs_systemctl_in_the_host_root(tmp_path: Path) -> None:
    show = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\nType=oneshot\n"
    runner = FakeRunner({"nvsm.service": (0, show)})
    host = SystemdHost("/host", runner)
    assert host.unit("nvsm.service") == UnitState("nvsm.service", "loaded", "active", "enabled", "oneshot")
    host.stop("nvsm.service", 30)
    host.start("nvsm.service", 120)
    assert runner.calls == [
        ["chroot", "/host", "systemctl", "show", "nvsm.service", "--property=LoadState,ActiveState,UnitFileState,Type"],
        ["chroot", "/host", "systemctl", "stop", "nvsm.service"],
        ["chroot", "/host", "systemctl", "start", "nvsm.service"],
    ]
    assert SystemdHost("/", FakeRunner())._prefix() == []


def test_systemd_host_not_found_unit() -> None:
    runner = FakeRunner({"x.service": (0, "LoadState=not-found\nActiveState=inactive\nUnitFileState=\nType=simple\n")})
    assert stop_decision(SystemdHost("/host", runner).unit("x.service"))[0] is StopAction.SKIP


def test_systemd_host_errors() -> None:
    with pytest.raises(HostError, match="exited 1"):
        SystemdHost("/host", FakeRunner({"x.service": (1, "")})).stop("x.service", 1)
    with pytest.raises(HostError, match="did not finish within 2s"):
        SystemdHost("/host", FakeRunner(timeout=True)).start("x.service", 2)


def test_systemd_host_drop_in(tmp_path: Path) -> None:
    runner = FakeRunner()
    host = SystemdHost(str(tmp_path), runner)
    state_file = "/etc/systemd/system/nvidia-mig-manager.service.d/override.conf"
    assert host.persist_selected_config(state_file, "all-balanced") is False  # only when the drop-in exists
    path = tmp_path / state_file.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_text("[Service]\n")
    assert host.persist_selected_config(state_file, "all-balanced") is True
    assert path.read_text() == drop_in_text("all-balanced")
    assert 'Environment="MIG_PARTED_SELECTED_CONFIG=all-balanced"' in path.read_text()
    assert runner.calls[-1][-1] == "daemon-reload"


def test_simulated_host(tmp_path: Path) -> None:
    gpus = init_host(tmp_path / "gpus.json", "H100x1")
    path = init_host_services(
        default_services_path(gpus),
        {
            "a.service": {"active": "active"},
            "b.service": {"active": "inactive", "enabled": "disabled"},
            "f.service": {"failStart": True},
        },
        state_file=True,
    )
    host = SimulatedHost(path, gpus)
    assert host.unit("a.service").active == "active"
    assert host.unit("nope.service").load == "not-found"
    host.stop("a.service", 1)
    assert host.unit("a.service").active == "inactive"
    with pytest.raises(HostError, match="job failed"):
        host.start("f.service", 1)
    assert host.unit("f.service").active == "failed"
    with pytest.raises(HostError, match="not found"):
        host.stop("nope.service", 1)
    assert host.persist_selected_config("ignored", "all-balanced")
    boot = host.boot_id()
    host.reboot()
    assert host.boot_id() != boot
    data = read_host_services(path)
    assert data["units"]["a.service"]["active"] == "active"  # enabled units start at boot
    assert data["units"]["b.service"]["active"] == "inactive"
    assert data["stateFile"] == {"selectedConfig": "all-balanced"}
    assert [e["op"] for e in data["log"]] == ["stop", "start", "reboot"]
    assert read_state(gpus)["counters"]["reboots"] == 1


def test_simulated_host_without_a_file_has_no_units(tmp_path: Path) -> None:
    host = SimulatedHost(tmp_path / "missing.json", None)
    assert host.unit("a.service").load == "not-found"
    assert host.persist_selected_config("x", "c") is False
    assert host.boot_id() == ""
