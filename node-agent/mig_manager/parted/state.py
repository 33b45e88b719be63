"""MIG state with placements: what `checkpoint` writes and `restore` puts back, and what apply rolls back to.

The JSON uses NVIDIA's field names (mig-facts 2.6): `{"Version": "v1", "MigState": {"Devices": [{"UUID",
"MigMode", "GpuInstances": [{"ProfileID", "Placement": {"Start", "Size"}, "ComputeInstances": [{"ProfileID",
"EngProfileID"}]}]}]}}`.
Two additions: each compute instance also records its `Placement` (NVIDIA lets the driver choose it), and each device
its `Index` (informational; devices are matched by UUID).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..catalog import Placement
from ..devices.base import GpuBackend, GpuInstance, MigMode
from ..errors import MigManagerError
from .node import Gpu, call, discover

VERSION = "v1"


class CheckpointError(MigManagerError):
    """A checkpoint file cannot be read or does not have the expected shape."""


@dataclass(frozen=True, order=True)
class CiState:
    profile_id: int
    placement: Placement
    engine_profile_id: int = 0


@dataclass(frozen=True, order=True)
class GiState:
    profile_id: int
    placement: Placement
    compute_instances: tuple[CiState, ...] = ()

    def canonical(self) -> GiState:
        return GiState(self.profile_id, self.placement, tuple(sorted(self.compute_instances)))


@dataclass(frozen=True)
class GpuState:
    uuid: str
    index: int
    mode: MigMode
    gpu_instances: tuple[GiState, ...] = ()


@dataclass(frozen=True)
class NodeState:
    devices: tuple[GpuState, ...]


def geometry(instances: Iterable[GpuInstance] | Iterable[GiState]) -> tuple[GiState, ...]:
    """A placement-exact, id-free, order-free view of a GPU's instances, for comparing with a target."""
    out: list[GiState] = []
    for gi in instances:
        if isinstance(gi, GiState):
            out.append(gi.canonical())
            continue
        cis = tuple(sorted(CiState(ci.profile_id, ci.placement, ci.engine_profile_id) for ci in gi.compute_instances))
        out.append(GiState(gi.profile_id, gi.placement, cis))
    return tuple(sorted(out, key=lambda g: (g.placement, g.profile_id, g.compute_instances)))


def fetch_gpu_state(backend: GpuBackend, gpu: Gpu) -> GpuState:
    where = gpu.describe()
    mode = call(where, "reading MIG mode", backend.mig_mode, gpu.index).current
    instances: tuple[GiState, ...] = ()
    if mode == MigMode.ENABLED:
        instances = geometry(call(where, "listing GPU instances", backend.gpu_instances, gpu.index))
    return GpuState(gpu.info.uuid, gpu.index, mode, instances)


def fetch_state(backend: GpuBackend, gpus: Sequence[Gpu] | None = None) -> NodeState:
    """The MIG state of every MIG-capable GPU (NVIDIA omits GPUs without MIG); disabled GPUs have no instances."""
    gpus = discover(backend) if gpus is None else gpus
    return NodeState(tuple(fetch_gpu_state(backend, g) for g in gpus if g.info.mig_capable))


# ---------------------------------------------------------------------------------------------------------------------
# JSON


def _placement_json(p: Placement) -> dict[str, int]:
    return {"Start": p.start, "Size": p.size}


def state_to_json(state: NodeState) -> dict[str, Any]:
    return {
        "Version": VERSION,
        "MigState": {
            "Devices": [
                {
                    "UUID": d.uuid,
                    "Index": d.index,
                    "MigMode": int(d.mode),
                    "GpuInstances": [
                        {
                            "ProfileID": gi.profile_id,
                            "Placement": _placement_json(gi.placement),
                            "ComputeInstances": [
                                {
                                    "ProfileID": ci.profile_id,
                                    "EngProfileID": ci.engine_profile_id,
                                    "Placement": _placement_json(ci.placement),
                                }
                                for ci in gi.compute_instances
                            ],
                        }
                        for gi in d.gpu_instances
                    ],
                }
                for d in state.devices
            ]
        },
    }


def dump_state(state: NodeState) -> str:
    return json.dumps(state_to_json(state), indent=2) + "\n"


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: {path}: {message}")

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {json.dumps(value)[:40]}")
        return value

    def get(self, obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise self.fail(path, f"missing key {key!r}")
        return obj[key]

    def int(self, obj: dict[str, Any], key: str, path: str, default: int | None = None) -> int:
        if default is not None and key not in obj:
            return default
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{path}.{key}", f"must be a non-negative integer, got {json.dumps(value)}")
        return value

    def list(self, obj: dict[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{path}.{key}", "must be a list")
        return value

    def placement(self, obj: dict[str, Any], path: str, required: bool = True) -> Placement | None:
        if not required and "Placement" not in obj:
            return None
        raw = self.obj(self.get(obj, "Placement", path), f"{path}.Placement")
        size = self.int(raw, "Size", f"{path}.Placement")
        if size < 1:
            raise self.fail(f"{path}.Placement.Size", "must be at least 1")
        return Placement(self.int(raw, "Start", f"{path}.Placement"), size)


def state_from_json(data: Any, source: str = "<checkpoint>") -> NodeState:
    r = _Reader(source)
    top = r.obj(data, "checkpoint")
    version = r.get(top, "Version", "checkpoint")
    if version != VERSION:
        raise r.fail("Version", f"unknown version {json.dumps(version)}; expected {json.dumps(VERSION)}")
    mig_state = r.obj(r.get(top, "MigState", "checkpoint"), "MigState")
    devices: list[GpuState] = []
    seen: set[str] = set()
    for i, raw_device in enumerate(r.list(mig_state, "Devices", "MigState")):
        path = f"MigState.Devices[{i}]"
        device = r.obj(raw_device, path)
        uuid = r.get(device, "UUID", path)
        if not isinstance(uuid, str) or not uuid:
            raise r.fail(f"{path}.UUID", "must be a non-empty string")
        if uuid in seen:
            raise r.fail(f"{path}.UUID", f"{uuid} appears twice")
        seen.add(uuid)
        mode_value = r.int(device, "MigMode", path)
        if mode_value not in (0, 1):
            raise r.fail(f"{path}.MigMode", f"must be 0 (disabled) or 1 (enabled), got {mode_value}")
        mode = MigMode(mode_value)
        gis: list[GiState] = []
        for j, raw_gi in enumerate(r.list(device, "GpuInstances", path)):
            gpath = f"{path}.GpuInstances[{j}]"
            gi = r.obj(raw_gi, gpath)
            placement = r.placement(gi, gpath)
            assert placement is not None
            cis: list[CiState] = []
            for k, raw_ci in enumerate(r.list(gi, "ComputeInstances", gpath)):
                cpath = f"{gpath}.ComputeInstances[{k}]"
                ci = r.obj(raw_ci, cpath)
                ci_placement = r.placement(ci, cpath, required=False)
                if ci_placement is None:
                    raise r.fail(cpath, "missing key 'Placement' (this tool restores compute instances at placements)")
                cis.append(CiState(r.int(ci, "ProfileID", cpath), ci_placement, r.int(ci, "EngProfileID", cpath, 0)))
            gis.append(GiState(r.int(gi, "ProfileID", gpath), placement, tuple(cis)))
        if gis and mode == MigMode.DISABLED:
            raise r.fail(path, "has GPU instances but MigMode 0 (disabled)")
        index = r.int(device, "Index", path) if "Index" in device else -1
        devices.append(GpuState(uuid, index, mode, tuple(gis)))
    return NodeState(tuple(devices))


def load_state(text: str, source: str = "<checkpoint>") -> NodeState:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return state_from_json(data, source)


def load_state_file(path: str) -> NodeState:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: the checkpoint file is not UTF-8 text: {exc.reason}") from None
    return load_state(text, path)


def write_state_file(path: str, state: NodeState) -> None:
    """Write a checkpoint atomically (a temporary file in the same directory, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dump_state(state))
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write the checkpoint file: {exc.strerror or exc}") from None
