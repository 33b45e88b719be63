"""A simulated GPU host: the `GpuBackend` protocol over a JSON state file that several processes can share.

Every operation takes an exclusive `flock` on `<state>.lock`, reads the state, applies the change, and writes a temp
file that replaces the state atomically, so concurrent processes never see a torn or lost update.

Rules are the catalog's, applied exactly from the GPU's `ProfileTable`; failures carry the NVML code a real GPU gives:

- MIG call on a GPU without MIG, or with MIG (currently) disabled: NOT_SUPPORTED.
- Unknown GPU index: INVALID_ARGUMENT. Unknown GPU- or compute-instance id: NOT_FOUND.
- Unknown profile id, placement not among the profile's possible placements (CI: wrong size, or running past the GI):
  INVALID_ARGUMENT.
- No room: overlap with an existing instance, the profile's max count reached, a `coexists_only_with` conflict, GI
  compute slices over the GPU's, CI slices over the GI's: INSUFFICIENT_RESOURCES.
- Destroying a GPU instance that still has compute instances: IN_USE (nvidia-smi: "In use by another client").

MIG mode model (see docs/devices.md): `set_mig_mode` records the pending mode and returns the activation status.
A GPU flagged `reboot_required` (passthrough VM) keeps the change pending and returns RESET_REQUIRED; its reset
always fails with ResetError(RESET_REQUIRED) and only `reboot()` applies it. Otherwise, while processes use the GPU the
change stays pending (IN_USE). Otherwise Hopper and later (compute capability >= 9) apply at once (SUCCESS), and
Ampere keeps it pending until a reset (RESET_REQUIRED). A pending change on Hopper+ also applies when the last process
goes. A reset applies pending modes and, as on real GPUs, loses every GPU/compute instance of the reset GPUs; it fails
with ResetError(IN_USE) while processes hold any of them (nothing is reset then). A disable that takes effect destroys
the GPU's instances. `reboot()` applies every pending mode and clears all instances and processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..catalog import GpuModel, Placement, ProfileTable, default_catalog
from ..errors import MigManagerError
from ..planner import NodeGpu
from ..spec import PciId
from .base import (
    ComputeInstance,
    DeviceError,
    GpuInfo,
    GpuInstance,
    MigMode,
    MigModeState,
    NvmlCode,
    ResetError,
)
from .faults import Fault, FaultSpecError, first_firing, parse_fault, parse_faults

__all__ = [
    "FAULTS_ENV",
    "STATE_VERSION",
    "SimulatedBackend",
    "SimulationError",
    "add_fault",
    "clear_faults",
    "init_host",
    "read_state",
    "reboot",
]

STATE_VERSION = 1
FAULTS_ENV = "MIG_SIM_FAULTS"
_KIND = "mig-manager-simulated-host"
_NVIDIA = 0x10DE
_DEFAULT_MEMORY_MIB = 24576  # for GPUs the catalog does not know
_MODE_NAMES = {MigMode.DISABLED: "disabled", MigMode.ENABLED: "enabled"}
_MODES = {v: k for k, v in _MODE_NAMES.items()}

T = TypeVar("T")
State = dict[str, Any]


class SimulationError(MigManagerError):
    """The simulated host cannot be used: no state file, a malformed one, or a malformed fault."""


# ---------------------------------------------------------------------------------------------------------------------
# State file I/O


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _dump(state: State) -> str:
    return json.dumps(state, indent=1) + "\n"


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _parse(path: Path, text: str) -> State:
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SimulationError(f"simulated host {path}: not valid JSON ({exc})") from exc
    if not isinstance(state, dict) or state.get("kind") != _KIND or state.get("version") != STATE_VERSION:
        raise SimulationError(
            f"simulated host {path}: not a state file of version {STATE_VERSION} (kind {_KIND!r}); "
            "create one with `mig-parted sim init`"
        )
    return state


def _transaction(path: Path, change: Callable[[State], T]) -> T:
    """Run `change` on the state under the lock; write it back (atomically) if it changed.

    The state is also written when `change` raises a DeviceError, so fault counters persist; every DeviceError is
    raised before anything else changes.
    """
    with _exclusive(path):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SimulationError(f"no simulated host at {path}; create one with `mig-parted sim init`") from None
        state = _parse(path, text)
        try:
            result = change(state)
        except DeviceError:
            new = _dump(state)
            if new != text:
                _write(path, new)
            raise
        new = _dump(state)
        if new != text:
            _write(path, new)
        return result


def read_state(path: str | os.PathLike[str]) -> State:
    """The host's state as stored (for `mig-parted sim show` and tests)."""
    p = Path(path)
    return _transaction(p, lambda state: json.loads(json.dumps(state)))


# ---------------------------------------------------------------------------------------------------------------------
# Creating a host


def _bus_id(index: int) -> str:
    domain, slot = divmod(index, 15)
    return f"{domain:08X}:{(slot + 1) * 0x10:02X}:00.0"


def _subsystem(pci: PciId) -> PciId:
    if pci.subsystem_device is not None:
        return pci
    # A deterministic stand-in for the board's subsystem id (real boards: e.g. 0x16C110DE on H100 SXM).
    return PciId(pci.device, pci.vendor, 0x1000 | (pci.device & 0x0FFF), _NVIDIA)


def _resolve(gpus: str | Sequence[NodeGpu | str]) -> list[NodeGpu]:
    from ..cli import UsageError, parse_gpus  # the `--gpus SPEC` grammar; cli imports nothing from here

    items: Sequence[NodeGpu | str] = [gpus] if isinstance(gpus, str) else gpus
    out: list[NodeGpu] = []
    for item in items:
        try:
            parsed = parse_gpus(item) if isinstance(item, str) else [item]
        except UsageError as exc:
            raise SimulationError(str(exc)) from exc
        out.extend(parsed)
    return out


def _gpu_state(path: Path, index: int, gpu: NodeGpu, reboot_required: bool, enabled: bool) -> State:
    catalog = default_catalog()
    model: GpuModel | None = catalog.lookup(gpu.table.model) if gpu.table is not None else None
    pci = _subsystem(gpu.pci)
    name = uuid.uuid5(uuid.NAMESPACE_URL, f"mig-manager-sim:{path.resolve()}:{index}")
    capable = model is not None
    mode = "enabled" if capable and enabled else "disabled"
    return {
        "index": index,
        "uuid": f"GPU-{name}",
        "pci_bus_id": _bus_id(index),
        "pci_device_id": f"0x{pci.device:04X}{pci.vendor:04X}",
        "pci_subsystem_id": f"0x{pci.subsystem_device:04X}{pci.subsystem_vendor:04X}",
        "product_name": model.product_name if model else (gpu.product_name or "NVIDIA GPU"),
        "memory_mib": model.memory_mib if model else _DEFAULT_MEMORY_MIB,
        "model": model.key if model else None,
        "compute_capability": model.compute_capability if model else "8.6",
        "mig_capable": capable,
        "mig_mode": {"current": mode, "pending": mode},
        "reboot_required": reboot_required,
        "processes": [],
        "gpu_instances": [],
    }


def init_host(
    path: str | os.PathLike[str],
    gpus: str | Sequence[NodeGpu | str],
    *,
    reboot_required_for_mode_change: bool = False,
    mig_enabled: bool = False,
) -> Path:
    """Create (or replace) a simulated host at `path`.

    `gpus` is a `--gpus` SPEC (`H100x8`, `A100-40GB,0x20B710DEx2`), a list of such strings, or `NodeGpu`s from
    `cli.parse_gpus`. A GPU is MIG-capable iff the catalog knows its model. `reboot_required_for_mode_change` flags
    every GPU as a passthrough GPU whose mode changes need a reboot; `mig_enabled` starts MIG-capable GPUs enabled.
    """
    p = Path(path)
    nodes = _resolve(gpus)
    if not nodes:
        raise SimulationError("a simulated host needs at least one GPU")
    state: State = {
        "kind": _KIND,
        "version": STATE_VERSION,
        "gpus": [_gpu_state(p, i, g, reboot_required_for_mode_change, mig_enabled) for i, g in enumerate(nodes)],
        "faults": [],
        "counters": {"resets": 0, "reboots": 0},
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(p):
        _write(p, _dump(state))
    return p


# ---------------------------------------------------------------------------------------------------------------------
# Host-level helpers (not backend calls: not counted, no faults)


def reboot(path: str | os.PathLike[str]) -> None:
    """Reboot the host: pending modes apply; every GPU and compute instance and every process is gone."""
    SimulatedBackend(path).reboot()


def add_fault(
    path: str | os.PathLike[str],
    op: str,
    code: NvmlCode | str,
    *,
    gpu: int | None = None,
    after: int = 0,
    times: int = 1,
    probability: float = 1.0,
    seed: int = 0,
) -> None:
    """Append a fault to the state file (its counters persist across processes)."""
    raw: dict[str, Any] = {"op": op, "code": code.name if isinstance(code, NvmlCode) else code}
    if gpu is not None:
        raw["gpu"] = gpu
    raw.update(after=after, times=times, probability=probability, seed=seed)
    fault = parse_fault(raw)

    def change(state: State) -> None:
        state.setdefault("faults", []).append(fault.to_json())

    _transaction(Path(path), change)


def clear_faults(path: str | os.PathLike[str]) -> None:
    def change(state: State) -> None:
        state["faults"] = []

    _transaction(Path(path), change)


# ---------------------------------------------------------------------------------------------------------------------
# State helpers


def _placement(raw: Any) -> Placement:
    return Placement(int(raw["start"]), int(raw["size"]))


def _placement_json(p: Placement) -> dict[str, int]:
    return {"start": p.start, "size": p.size}


def _mode(gpu: State, which: str) -> MigMode:
    return _MODES[gpu["mig_mode"][which]]


def _hopper_or_later(gpu: State) -> bool:
    major = str(gpu.get("compute_capability", "0")).split(".")[0]
    return major.isdigit() and int(major) >= 9


def _apply_pending(gpu: State) -> None:
    gpu["mig_mode"]["current"] = gpu["mig_mode"]["pending"]
    if _mode(gpu, "current") is MigMode.DISABLED:
        gpu["gpu_instances"] = []


def _ci_obj(raw: State) -> ComputeInstance:
    return ComputeInstance(
        id=raw["id"],
        profile_id=raw["profile_id"],
        placement=_placement(raw["placement"]),
        engine_profile_id=raw.get("engine_profile_id", 0),
    )


def _gi_obj(raw: State) -> GpuInstance:
    cis = sorted((_ci_obj(c) for c in raw["compute_instances"]), key=lambda c: (c.placement, c.id))
    return GpuInstance(
        id=raw["id"], profile_id=raw["profile_id"], placement=_placement(raw["placement"]), compute_instances=tuple(cis)
    )


def _smallest_free(used: set[int], start: int) -> int:
    n = start
    while n in used:
        n += 1
    return n


class SimulatedBackend:
    """`GpuBackend` over a simulated host's state file.

    `calls` logs every backend call made through this object (op names, in order; failed calls included). Faults
    come from the state file (counted across processes) and from `MIG_SIM_FAULTS` (a JSON list read when the backend
    is created, counted in this object only).
    """

    def __init__(self, state_path: str | os.PathLike[str]) -> None:
        self.path = Path(state_path)
        if not self.path.exists():
            raise SimulationError(f"no simulated host at {self.path}; create one with `mig-parted sim init`")
        self.calls: list[str] = []
        self.env_faults: list[Fault] = []
        text = os.environ.get(FAULTS_ENV, "").strip()
        if text:
            try:
                self.env_faults = parse_faults(json.loads(text), FAULTS_ENV)
            except (json.JSONDecodeError, FaultSpecError) as exc:
                raise SimulationError(f"{FAULTS_ENV}: {exc}") from exc
        self._tables: dict[str, ProfileTable] = {}

    def __repr__(self) -> str:
        return f"SimulatedBackend({str(self.path)!r})"

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _call(self, op: str, gpus: Sequence[int], body: Callable[[State], T]) -> T:
        self.calls.append(op)

        def change(state: State) -> T:
            for i in gpus:
                self._gpu(state, op, i)
            self._inject(state, op, gpus)
            return body(state)

        return _transaction(self.path, change)

    def _inject(self, state: State, op: str, gpus: Sequence[int]) -> None:
        try:
            stored = parse_faults(state.get("faults"), f"{self.path}: faults")
        except FaultSpecError as exc:
            raise SimulationError(str(exc)) from exc
        fault = first_firing(stored, op, gpus)
        if stored:
            state["faults"] = [f.to_json() for f in stored]
        env = first_firing(self.env_faults, op, gpus)
        fault = fault or env
        if fault is not None:
            gpu = gpus[0] if len(gpus) == 1 else fault.gpu
            error = ResetError if op == "reset" else DeviceError
            raise error(op, fault.code, "injected fault", gpu=gpu)

    @staticmethod
    def _gpu(state: State, op: str, index: int) -> State:
        gpus = state["gpus"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(gpus):
            raise DeviceError(op, NvmlCode.INVALID_ARGUMENT, f"no GPU {index!r}; the host has GPUs 0-{len(gpus) - 1}")
        gpu: State = gpus[index]
        return gpu

    def _table(self, gpu: State, op: str) -> ProfileTable:
        if not gpu["mig_capable"] or gpu.get("model") is None:
            raise DeviceError(op, NvmlCode.NOT_SUPPORTED, f"{gpu['product_name']} does not support MIG", gpu["index"])
        key = gpu["model"]
        if key not in self._tables:
            self._tables[key] = default_catalog().lookup(key).table
        return self._tables[key]

    def _mig_table(self, gpu: State, op: str) -> ProfileTable:
        table = self._table(gpu, op)
        if _mode(gpu, "current") is not MigMode.ENABLED:
            raise DeviceError(op, NvmlCode.NOT_SUPPORTED, "MIG mode is disabled", gpu["index"])
        return table

    @staticmethod
    def _find_gi(gpu: State, op: str, gi_id: int) -> State:
        for gi in gpu["gpu_instances"]:
            if gi["id"] == gi_id:
                found: State = gi
                return found
        raise DeviceError(op, NvmlCode.NOT_FOUND, f"no GPU instance {gi_id}", gpu["index"])

    # -- GpuBackend -----------------------------------------------------------------------------------------------

    def gpus(self) -> list[GpuInfo]:
        def body(state: State) -> list[GpuInfo]:
            return [
                GpuInfo(
                    index=g["index"],
                    uuid=g["uuid"],
                    pci_bus_id=g["pci_bus_id"],
                    pci=PciId.from_device_vendor(int(g["pci_device_id"], 16), int(g["pci_subsystem_id"], 16)),
                    product_name=g["product_name"],
                    memory_mib=g["memory_mib"],
                    mig_capable=g["mig_capable"],
                )
                for g in state["gpus"]
            ]

        return self._call("gpus", (), body)

    def mig_mode(self, index: int) -> MigModeState:
        def body(state: State) -> MigModeState:
            gpu = state["gpus"][index]
            self._table(gpu, "mig_mode")
            return MigModeState(current=_mode(gpu, "current"), pending=_mode(gpu, "pending"))

        return self._call("mig_mode", (index,), body)

    def set_mig_mode(self, index: int, mode: MigMode) -> NvmlCode:
        def body(state: State) -> NvmlCode:
            gpu = state["gpus"][index]
            self._table(gpu, "set_mig_mode")
            wanted = MigMode(mode)
            gpu["mig_mode"]["pending"] = _MODE_NAMES[wanted]
            if wanted is _mode(gpu, "current"):
                return NvmlCode.SUCCESS
            if gpu["reboot_required"]:
                return NvmlCode.RESET_REQUIRED
            if gpu["processes"]:
                return NvmlCode.IN_USE
            if _hopper_or_later(gpu):
                _apply_pending(gpu)
                return NvmlCode.SUCCESS
            return NvmlCode.RESET_REQUIRED

        return self._call("set_mig_mode", (index,), body)

    def reset(self, indices: Sequence[int]) -> None:
        wanted = list(dict.fromkeys(indices))

        def body(state: State) -> None:
            gpus = [state["gpus"][i] for i in wanted]
            for gpu in gpus:
                if gpu["reboot_required"]:
                    raise ResetError(
                        "reset",
                        NvmlCode.RESET_REQUIRED,
                        "the GPU cannot be reset here (passthrough); reboot the machine",
                        gpu["index"],
                    )
            for gpu in gpus:
                if gpu["processes"]:
                    pids = ", ".join(str(p) for p in gpu["processes"])
                    raise ResetError("reset", NvmlCode.IN_USE, f"in use by processes {pids}", gpu["index"])
            for gpu in gpus:
                _apply_pending(gpu)
                gpu["gpu_instances"] = []
            state["counters"]["resets"] = state["counters"].get("resets", 0) + 1

        self._call("reset", wanted, body)

    def profile_table(self, index: int) -> ProfileTable:
        return self._call("profile_table", (index,), lambda state: self._table(state["gpus"][index], "profile_table"))

    def gpu_instances(self, index: int) -> list[GpuInstance]:
        def body(state: State) -> list[GpuInstance]:
            gpu = state["gpus"][index]
            self._mig_table(gpu, "gpu_instances")
            return sorted((_gi_obj(g) for g in gpu["gpu_instances"]), key=lambda g: (g.placement, g.id))

        return self._call("gpu_instances", (index,), body)

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> GpuInstance:
        op = "create_gpu_instance"

        def body(state: State) -> GpuInstance:
            gpu = state["gpus"][index]
            table = self._mig_table(gpu, op)
            by_id = {p.id: p for p in table.gpu_instance_profiles}
            profile = by_id.get(profile_id)
            if profile is None:
                valid = ", ".join(f"{p.id} ({p.name})" for p in table.gpu_instance_profiles)
                raise DeviceError(op, NvmlCode.INVALID_ARGUMENT, f"unknown GI profile id {profile_id}; valid: {valid}")
            where = f"{profile.name} (profile {profile.id})"
            if placement not in profile.placements:
                valid = ", ".join(str(p) for p in profile.placements)
                raise DeviceError(
                    op, NvmlCode.INVALID_ARGUMENT, f"{where}: placement {placement} is not one of {valid}", index
                )
            existing = [(_placement(g["placement"]), by_id.get(g["profile_id"]), g) for g in gpu["gpu_instances"]]
            count = sum(1 for _, p, _ in existing if p is profile)
            if count >= profile.max_count:
                raise DeviceError(
                    op, NvmlCode.INSUFFICIENT_RESOURCES, f"{where}: at most {profile.max_count} allowed", index
                )
            for other_placement, _, raw in existing:
                if other_placement.overlaps(placement):
                    raise DeviceError(
                        op,
                        NvmlCode.INSUFFICIENT_RESOURCES,
                        f"{where}: placement {placement} overlaps GPU instance {raw['id']} at {other_placement}",
                        index,
                    )
            names = {p.name for _, p, _ in existing if p is not None}
            for a, others in ((profile, names), *((p, {profile.name}) for _, p, _ in existing if p is not None)):
                if a.coexists_only_with is None:
                    continue
                conflict = sorted(str(n) for n in others - a.coexists_only_with - {a.name})
                if conflict:
                    allowed = ", ".join(sorted(str(n) for n in a.coexists_only_with))
                    raise DeviceError(
                        op,
                        NvmlCode.INSUFFICIENT_RESOURCES,
                        f"{where}: {a.name} coexists only with {allowed}, not with {', '.join(conflict)}",
                        index,
                    )
            used = sum(p.slices for _, p, _ in existing if p is not None)
            if used + profile.slices > table.compute_slices:
                raise DeviceError(
                    op,
                    NvmlCode.INSUFFICIENT_RESOURCES,
                    f"{where}: needs {profile.slices} compute slices, {table.compute_slices - used} are free",
                    index,
                )
            new_id = _smallest_free({g["id"] for g in gpu["gpu_instances"]}, 1)
            raw_gi: State = {
                "id": new_id,
                "profile_id": profile.id,
                "placement": _placement_json(placement),
                "compute_instances": [],
            }
            gpu["gpu_instances"].append(raw_gi)
            return _gi_obj(raw_gi)

        return self._call(op, (index,), body)

    def destroy_gpu_instance(self, index: int, gpu_instance_id: int) -> None:
        op = "destroy_gpu_instance"

        def body(state: State) -> None:
            gpu = state["gpus"][index]
            self._mig_table(gpu, op)
            gi = self._find_gi(gpu, op, gpu_instance_id)
            if gi["compute_instances"]:
                ids = ", ".join(str(c["id"]) for c in gi["compute_instances"])
                raise DeviceError(
                    op,
                    NvmlCode.IN_USE,
                    f"GPU instance {gpu_instance_id} still has compute instances {ids}; destroy them first",
                    index,
                )
            gpu["gpu_instances"].remove(gi)

        self._call(op, (index,), body)

    def create_compute_instance(
        self, index: int, gpu_instance_id: int, profile_id: int, placement: Placement
    ) -> ComputeInstance:
        op = "create_compute_instance"

        def body(state: State) -> ComputeInstance:
            gpu = state["gpus"][index]
            table = self._mig_table(gpu, op)
            gi = self._find_gi(gpu, op, gpu_instance_id)
            gi_profile = next((p for p in table.gpu_instance_profiles if p.id == gi["profile_id"]), None)
            if gi_profile is None:  # pragma: no cover - only a hand-edited state file gets here
                raise DeviceError(op, NvmlCode.UNKNOWN, f"GPU instance {gpu_instance_id} has an unknown profile", index)
            cis = table.compute_instance_profiles.get(gi_profile.slices, {})
            profile = next((c for c in cis.values() if c.id == profile_id), None)
            where = f"GPU instance {gpu_instance_id} ({gi_profile.name})"
            if profile is None:
                valid = ", ".join(f"{c.id} ({c.slices}c)" for c in cis.values())
                raise DeviceError(
                    op, NvmlCode.INVALID_ARGUMENT, f"{where}: unknown CI profile id {profile_id}; valid: {valid}", index
                )
            if placement.size != profile.slices or placement.start < 0 or placement.end > gi_profile.slices:
                raise DeviceError(
                    op,
                    NvmlCode.INVALID_ARGUMENT,
                    f"{where}: CI placement {placement} must have size {profile.slices} and lie within "
                    f"0:{gi_profile.slices}",
                    index,
                )
            existing = [(_placement(c["placement"]), c) for c in gi["compute_instances"]]
            count = sum(1 for _, c in existing if c["profile_id"] == profile.id)
            if count >= profile.max_count:
                raise DeviceError(
                    op,
                    NvmlCode.INSUFFICIENT_RESOURCES,
                    f"{where}: at most {profile.max_count} {profile.slices}c compute instances",
                    index,
                )
            used = sum(p.size for p, _ in existing)
            if used + profile.slices > gi_profile.slices:
                raise DeviceError(
                    op,
                    NvmlCode.INSUFFICIENT_RESOURCES,
                    f"{where}: needs {profile.slices} compute slices, {gi_profile.slices - used} are free",
                    index,
                )
            for other, raw in existing:
                if other.overlaps(placement):
                    raise DeviceError(
                        op,
                        NvmlCode.INSUFFICIENT_RESOURCES,
                        f"{where}: CI placement {placement} overlaps compute instance {raw['id']} at {other}",
                        index,
                    )
            raw_ci: State = {
                "id": _smallest_free({c["id"] for c in gi["compute_instances"]}, 0),
                "profile_id": profile.id,
                "placement": _placement_json(placement),
                "engine_profile_id": 0,
            }
            gi["compute_instances"].append(raw_ci)
            return _ci_obj(raw_ci)

        return self._call(op, (index,), body)

    def destroy_compute_instance(self, index: int, gpu_instance_id: int, compute_instance_id: int) -> None:
        op = "destroy_compute_instance"

        def body(state: State) -> None:
            gpu = state["gpus"][index]
            self._mig_table(gpu, op)
            gi = self._find_gi(gpu, op, gpu_instance_id)
            for ci in gi["compute_instances"]:
                if ci["id"] == compute_instance_id:
                    gi["compute_instances"].remove(ci)
                    return
            raise DeviceError(
                op,
                NvmlCode.NOT_FOUND,
                f"no compute instance {compute_instance_id} in GPU instance {gpu_instance_id}",
                index,
            )

        self._call(op, (index,), body)

    def processes(self, index: int) -> list[int]:
        return self._call("processes", (index,), lambda state: list(state["gpus"][index]["processes"]))

    # -- host operations (not backend calls: not logged, no faults) ---------------------------------------------

    def _host(self, change: Callable[[State], T]) -> T:
        return _transaction(self.path, change)

    def add_process(self, index: int, pid: int) -> None:
        """A process starts using GPU `index` (it holds the GPU: resets fail, mode changes stay pending)."""

        def change(state: State) -> None:
            gpu = self._gpu(state, "add_process", index)
            if pid not in gpu["processes"]:
                gpu["processes"].append(pid)

        self._host(change)

    def remove_process(self, index: int, pid: int) -> None:
        """The process stops; on Hopper and later a pending mode change then applies (unless a reboot is needed)."""

        def change(state: State) -> None:
            gpu = self._gpu(state, "remove_process", index)
            if pid in gpu["processes"]:
                gpu["processes"].remove(pid)
            pending = _mode(gpu, "current") is not _mode(gpu, "pending")
            if pending and not gpu["processes"] and not gpu["reboot_required"] and _hopper_or_later(gpu):
                _apply_pending(gpu)

        self._host(change)

    def set_reboot_required(self, index: int, flag: bool = True) -> None:
        """Flag one GPU as a passthrough GPU (mode changes need a reboot, resets fail)."""

        def change(state: State) -> None:
            self._gpu(state, "set_reboot_required", index)["reboot_required"] = bool(flag)

        self._host(change)

    def reboot(self) -> None:
        """Pending modes apply; every GPU and compute instance and every process is gone."""

        def change(state: State) -> None:
            for gpu in state["gpus"]:
                _apply_pending(gpu)
                gpu["gpu_instances"] = []
                gpu["processes"] = []
            state["counters"]["reboots"] = state["counters"].get("reboots", 0) + 1

        self._host(change)

    def state(self) -> State:
        """A copy of the stored state."""
        return read_state(self.path)
