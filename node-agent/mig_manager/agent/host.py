"""The host: its systemd GPU clients, the mig-manager state drop-in, its boot id, and reboot.

Two implementations of one small interface: `SystemdHost` runs `systemctl` on the host through `chroot
HOST_ROOT_MOUNT`, and `SimulatedHost` keeps unit states in a JSON file next to a simulated GPU host (format in
docs/agent.md). Which units to stop, and in which order to start them again, is decided by the pure `stop_decision`
and `restart_order`, following NVIDIA's rules (mig-facts 3.3 step 9).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..devices.simulated_host import KIND
from ..devices.simulated_host import locked as _locked
from ..devices.simulated_host import write_json as _write_json
from .errors import HostError

log = logging.getLogger("mig_manager.agent.host")

# ---------------------------------------------------------------------------------------------------------------------
# Pure rules


@dataclass(frozen=True)
class UnitState:
    """What systemd says of a unit: LoadState, ActiveState, UnitFileState and Type."""

    name: str
    load: str = "loaded"  # loaded | not-found | masked ...
    active: str = "inactive"  # active | inactive | failed | activating | deactivating | reloading
    enabled: str = "enabled"  # enabled | disabled | static | masked | ...
    type: str = "simple"  # simple | oneshot | forking | notify ...


class StopAction(enum.Enum):
    STOP = "stop"  # active: stop it now and start it again afterwards
    REMEMBER = "remember"  # failed, or inactive but enabled: leave it, start it afterwards
    SKIP = "skip"  # not found, oneshot, disabled, or inactive and not enabled: leave it alone


def stop_decision(unit: UnitState) -> tuple[StopAction, str]:
    """NVIDIA's rule for one GPU client unit, with the reason (for the log)."""
    if unit.load == "not-found":
        return StopAction.SKIP, "unit not found"
    if unit.type == "oneshot":
        return StopAction.SKIP, "oneshot unit"
    if unit.active in ("active", "activating", "reloading"):
        return StopAction.STOP, "active"
    if unit.active == "failed":
        return StopAction.REMEMBER, "failed; started again afterwards"
    if unit.enabled in ("disabled", "masked") or unit.load == "masked":
        return StopAction.SKIP, "disabled"
    if unit.enabled == "enabled":
        return StopAction.REMEMBER, "inactive but enabled; started afterwards"
    return StopAction.SKIP, f"inactive ({unit.enabled or 'not enabled'})"


def services_to_stop(clients: Sequence[str], mode_change: bool, kubelet: str) -> list[str]:
    """The units considered: the GPU clients file's, plus the kubelet when the MIG mode changes (NVIDIA's order)."""
    units = list(dict.fromkeys(clients))
    if mode_change and kubelet and kubelet not in units:
        units.append(kubelet)
    return units


def restart_order(remembered: Sequence[str]) -> list[str]:
    """Units are started again in the reverse of the order they were stopped in."""
    return list(reversed(remembered))


# ---------------------------------------------------------------------------------------------------------------------
# Interface


class Host(Protocol):
    def unit(self, name: str) -> UnitState: ...

    def stop(self, name: str, timeout: float) -> None:
        """Stop a unit and wait for it; raise HostError."""
        ...

    def start(self, name: str, timeout: float) -> None:
        """Start a unit and wait for it; raise HostError."""
        ...

    def persist_selected_config(self, state_file: str, config: str) -> bool:
        """Write the host's mig-manager drop-in (only if it exists) and reload systemd; True if written."""
        ...

    def boot_id(self) -> str:
        """An id that changes with every boot of the host."""
        ...

    def reboot(self) -> None:
        """Reboot the host (the agent exits afterwards, as it would on a real node)."""
        ...


def drop_in_text(config: str) -> str:
    """NVIDIA's drop-in: the host's nvidia-mig-manager.service applies the same config at boot."""
    return f'[Service]\nEnvironment="MIG_PARTED_SELECTED_CONFIG={config}"\n'


# ---------------------------------------------------------------------------------------------------------------------
# systemd on the host


Runner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


class SystemdHost:
    """`chroot HOST_ROOT_MOUNT systemctl ...` (no chroot when the host root is `/`)."""

    def __init__(self, host_root: str, runner: Runner | None = None, query_timeout: float = 30.0) -> None:
        self.host_root = host_root or "/"
        self.runner = runner or _run
        self.query_timeout = query_timeout

    def _prefix(self) -> list[str]:
        return [] if os.path.normpath(self.host_root) == "/" else ["chroot", self.host_root]

    def _systemctl(self, args: Sequence[str], timeout: float, what: str) -> subprocess.CompletedProcess[str]:
        argv = [*self._prefix(), "systemctl", *args]
        try:
            proc = self.runner(argv, timeout)
        except subprocess.TimeoutExpired:
            raise HostError(f"{what}: `{' '.join(argv)}` did not finish within {timeout:g}s") from None
        except OSError as exc:
            raise HostError(f"{what}: cannot run `{' '.join(argv)}`: {exc}") from None
        return proc

    def unit(self, name: str) -> UnitState:
        props = "LoadState,ActiveState,UnitFileState,Type"
        proc = self._systemctl(["show", name, f"--property={props}"], self.query_timeout, f"querying {name}")
        if proc.returncode != 0:
            raise HostError(f"querying {name}: systemctl show exited {proc.returncode}: {proc.stderr.strip()}")
        values: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
        return UnitState(
            name,
            load=values.get("LoadState", "not-found") or "not-found",
            active=values.get("ActiveState", "inactive") or "inactive",
            enabled=values.get("UnitFileState", ""),
            type=values.get("Type", "simple") or "simple",
        )

    def _job(self, verb: str, name: str, timeout: float) -> None:
        proc = self._systemctl([verb, name], timeout, f"{verb} {name}")
        if proc.returncode != 0:
            raise HostError(f"systemctl {verb} {name} exited {proc.returncode}: {proc.stderr.strip()}")

    def stop(self, name: str, timeout: float) -> None:
        self._job("stop", name, timeout)

    def start(self, name: str, timeout: float) -> None:
        self._job("start", name, timeout)

    def persist_selected_config(self, state_file: str, config: str) -> bool:
        path = Path(self.host_root) / state_file.lstrip("/")
        if not state_file or not path.exists():
            return False
        try:
            path.write_text(drop_in_text(config), encoding="utf-8")
        except OSError as exc:
            raise HostError(f"writing {path}: {exc}") from None
        self._daemon_reload()
        return True

    def _daemon_reload(self) -> None:
        proc = self._systemctl(["daemon-reload"], self.query_timeout, "daemon-reload")
        if proc.returncode != 0:
            raise HostError(f"systemctl daemon-reload exited {proc.returncode}: {proc.stderr.strip()}")

    def boot_id(self) -> str:
        try:
            return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def reboot(self) -> None:
        argv = [*self._prefix(), "reboot"]
        try:
            proc = self.runner(argv, self.query_timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostError(f"`{' '.join(argv)}` failed: {exc}") from None
        if proc.returncode != 0:
            raise HostError(f"`{' '.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")


# ---------------------------------------------------------------------------------------------------------------------
# Simulated host


class SimulatedHost:
    """A host whose units live in a JSON file (missing file: a host without any of the units) and whose GPUs are a
    simulated GPU host (`reboot` reboots it too)."""

    def __init__(self, services_path: str | os.PathLike[str], gpu_state: str | os.PathLike[str] | None) -> None:
        self.path = Path(services_path)
        self.gpu_state = Path(gpu_state) if gpu_state is not None else None

    def _change(self, fn: Callable[[dict[str, Any]], Any]) -> Any:
        if not self.path.exists():
            return fn({"units": {}, "stateFile": None, "log": [], "_missing": True})
        with _locked(self.path):
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise HostError(f"simulated host services {self.path}: {exc}") from None
            if not isinstance(data, dict) or data.get("kind") != KIND:
                raise HostError(f"simulated host services {self.path}: not a {KIND} file")
            before = json.dumps(data, sort_keys=True)
            try:
                result = fn(data)
            finally:  # a failed job still leaves its trace (a unit that failed to start is `failed`)
                if json.dumps(data, sort_keys=True) != before:
                    _write_json(self.path, data)
            return result

    def unit(self, name: str) -> UnitState:
        def read(data: dict[str, Any]) -> UnitState:
            raw = data.get("units", {}).get(name)
            if raw is None:
                return UnitState(name, load="not-found", active="inactive", enabled="")
            return UnitState(name, "loaded", raw.get("active", "inactive"), raw.get("enabled", ""), raw.get("type"))

        result: UnitState = self._change(read)
        return result

    def _job(self, verb: str, name: str) -> None:
        def change(data: dict[str, Any]) -> None:
            raw = data.get("units", {}).get(name)
            if raw is None:
                raise HostError(f"systemctl {verb} {name}: Unit {name} not found.")
            data.setdefault("log", []).append({"op": verb, "unit": name})
            if raw.get("failStop" if verb == "stop" else "failStart"):
                if verb == "start":
                    raw["active"] = "failed"
                raise HostError(f"systemctl {verb} {name}: job failed (simulated)")
            raw["active"] = "inactive" if verb == "stop" else "active"

        self._change(change)

    def stop(self, name: str, timeout: float) -> None:
        self._job("stop", name)

    def start(self, name: str, timeout: float) -> None:
        self._job("start", name)

    def persist_selected_config(self, state_file: str, config: str) -> bool:
        def change(data: dict[str, Any]) -> bool:
            if not isinstance(data.get("stateFile"), dict):
                return False
            data["stateFile"]["selectedConfig"] = config
            data["daemonReloads"] = data.get("daemonReloads", 0) + 1
            return True

        written: bool = self._change(change)
        return written

    def boot_id(self) -> str:
        if self.gpu_state is None:
            return ""
        from ..devices.simulated import read_state

        state = read_state(self.gpu_state)
        return f"sim-boot-{state.get('counters', {}).get('reboots', 0)}"

    def reboot(self) -> None:
        log.warning("rebooting the simulated host %s", self.gpu_state)
        if self.gpu_state is not None:
            from ..devices.simulated import reboot

            reboot(self.gpu_state)

        def change(data: dict[str, Any]) -> None:
            if data.get("_missing"):
                return
            for raw in data.get("units", {}).values():
                raw["active"] = "active" if raw.get("enabled") == "enabled" else "inactive"
            data["reboots"] = data.get("reboots", 0) + 1
            data.setdefault("log", []).append({"op": "reboot"})

        self._change(change)
