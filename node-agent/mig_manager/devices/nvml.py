"""`GpuBackend` on real GPUs through NVML (`pynvml`, the nvidia-ml-py package).

- NVML is initialised on first use; a missing library (no NVIDIA driver) is a DeviceError(LIBRARY_NOT_FOUND) that
  says so. Every `pynvml.NVMLError` becomes a DeviceError with the matching `NvmlCode` (FUNCTION_NOT_FOUND, a
  driver too old for a call: NOT_SUPPORTED; values not distinguished here: UNKNOWN).
- Profile tables come from the device: each GPU_INSTANCE_PROFILE_* constant (the *index*) is queried and the
  reported `id` (the *profile ID*, what create calls take) is used from then on; placements from
  `nvmlDeviceGetGpuInstancePossiblePlacements`; names from the info's `name` field, or go-nvlib's formula.
  Compute-instance profiles need a GPU instance to query: they are read from existing instances, and taken from the
  catalog (logged) for instance sizes that do not exist yet.
- Compute-instance profile IDs follow the catalog (one per compute-slice count: 1c=0, 2c=1, 3c=2, 4c=3, 7c=4).
  Some GPU instances offer their 1-slice CI only as the REV1 profile (ID 7, e.g. the double-memory 1g): a create
  asking for 0 then uses 7, and reading back reports CI profile IDs by slice count.
- `reset` runs `nvidia-smi -r -i <comma-joined bus ids>`. Its failure output is mapped: "in use" / "being used" /
  "kill all processes" -> IN_USE; "not supported" / "primary GPU" / "reset couldn't run" / "reboot" ->
  RESET_REQUIRED (a reset is impossible here: reboot); "permission" -> NO_PERMISSION; anything else -> UNKNOWN.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pynvml

from ..catalog import (
    CI_PROFILE_CONSTANTS,
    Catalog,
    ComputeInstanceProfile,
    Engines,
    GpuInstanceProfile,
    Placement,
    ProfileTable,
    default_catalog,
)
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
from .profiles import GI_CONSTANT_NAMES, canonical_gi_name, heuristic_ci_table, name_from_info

log = logging.getLogger(__name__)

NO_LIBRARY_MESSAGE = (
    "the NVML library (libnvidia-ml.so.1) could not be loaded: no NVIDIA driver is installed on this machine, "
    "or it is not visible to this process (run on a GPU node, or use the simulated backend)"
)

_CODES: dict[int, NvmlCode] = {
    pynvml.NVML_SUCCESS: NvmlCode.SUCCESS,
    pynvml.NVML_ERROR_UNINITIALIZED: NvmlCode.UNINITIALIZED,
    pynvml.NVML_ERROR_INVALID_ARGUMENT: NvmlCode.INVALID_ARGUMENT,
    pynvml.NVML_ERROR_NOT_SUPPORTED: NvmlCode.NOT_SUPPORTED,
    pynvml.NVML_ERROR_NO_PERMISSION: NvmlCode.NO_PERMISSION,
    pynvml.NVML_ERROR_NOT_FOUND: NvmlCode.NOT_FOUND,
    pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES: NvmlCode.INSUFFICIENT_RESOURCES,
    pynvml.NVML_ERROR_IN_USE: NvmlCode.IN_USE,
    pynvml.NVML_ERROR_RESET_REQUIRED: NvmlCode.RESET_REQUIRED,
    pynvml.NVML_ERROR_GPU_IS_LOST: NvmlCode.GPU_IS_LOST,
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: NvmlCode.LIBRARY_NOT_FOUND,
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: NvmlCode.DRIVER_NOT_LOADED,
    pynvml.NVML_ERROR_TIMEOUT: NvmlCode.TIMEOUT,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: NvmlCode.NOT_SUPPORTED,
    pynvml.NVML_ERROR_UNKNOWN: NvmlCode.UNKNOWN,
}
_SKIP = (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_INVALID_ARGUMENT, pynvml.NVML_ERROR_NOT_FOUND)
_MAX_ITEMS = 64  # array size for placement and instance queries (a GPU has at most 12 memory slices)
_REV_CI = {pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1: 1, pynvml.NVML_COMPUTE_INSTANCE_PROFILE_7_SLICE_NVL: 7}

Runner = Callable[[list[str], float], "subprocess.CompletedProcess[str]"]


def nvml_code(value: int) -> NvmlCode:
    """The NvmlCode of an NVML return value (UNKNOWN for values this project does not distinguish)."""
    return _CODES.get(value, NvmlCode.UNKNOWN)


def _describe(err: pynvml.NVMLError) -> str:
    value = getattr(err, "value", None)
    text = pynvml.NVMLError._errcode_to_string.get(value)
    return f"{text} (NVML return value {value})" if text else f"NVML return value {value}"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def reset_failure_code(output: str) -> NvmlCode:
    """Classify `nvidia-smi -r` failure output (see the module docstring)."""
    text = output.lower()
    if any(s in text for s in ("in use", "being used", "kill all processes", "processes using")):
        return NvmlCode.IN_USE
    if any(s in text for s in ("not supported", "primary gpu", "reset couldn't run", "reboot", "requires restart")):
        return NvmlCode.RESET_REQUIRED
    if "permission" in text or "root" in text:
        return NvmlCode.NO_PERMISSION
    return NvmlCode.UNKNOWN


class NvmlBackend:
    """`GpuBackend` over NVML. Safe to construct without a GPU: nothing is loaded until the first call."""

    def __init__(
        self,
        *,
        catalog: Catalog | None = None,
        nvidia_smi: str = "nvidia-smi",
        reset_timeout_s: float = 120.0,
        run: Runner = _run,
    ) -> None:
        self._catalog = catalog
        self._nvidia_smi = nvidia_smi
        self._reset_timeout_s = reset_timeout_s
        self._run = run
        self._initialized = False
        self._gi_tables: dict[str, ProfileTable] = {}  # by GPU UUID: the GI part, as the device reported it
        self._ci_tables: dict[tuple[str, int], dict[int, ComputeInstanceProfile]] = {}  # (UUID, GI slices)
        self.calls: list[str] = []

    # -- plumbing -------------------------------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self._catalog or default_catalog()

    @contextlib.contextmanager
    def _nvml(self, op: str, gpu: int | None = None) -> Iterator[None]:
        try:
            yield
        except pynvml.NVMLError as err:
            code = nvml_code(err.value)
            if code is NvmlCode.LIBRARY_NOT_FOUND:
                raise DeviceError(op, code, NO_LIBRARY_MESSAGE, gpu) from err
            if code is NvmlCode.DRIVER_NOT_LOADED:
                raise DeviceError(op, code, f"the NVIDIA kernel driver is not loaded: {_describe(err)}", gpu) from err
            raise DeviceError(op, code, _describe(err), gpu) from err

    def _init(self, op: str) -> None:
        if self._initialized:
            return
        with self._nvml(op):
            pynvml.nvmlInit()
        self._initialized = True

    def _start(self, op: str) -> None:
        self.calls.append(op)
        self._init(op)

    def close(self) -> None:
        """Shut NVML down (if this object initialised it)."""
        if self._initialized:
            self._initialized = False
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()

    def _device(self, op: str, index: int) -> Any:
        with self._nvml(op, index):
            return pynvml.nvmlDeviceGetHandleByIndex(index)

    def _gpu_instance(self, op: str, index: int, gpu_instance_id: int) -> Any:
        dev = self._device(op, index)
        with self._nvml(op, index):
            return pynvml.nvmlDeviceGetGpuInstanceById(dev, gpu_instance_id)

    @staticmethod
    def _gi_info(gi: Any) -> tuple[int, int, Placement]:
        info = pynvml.nvmlGpuInstanceGetInfo(gi)
        return int(info.id), int(info.profileId), Placement(int(info.placement.start), int(info.placement.size))

    @staticmethod
    def _ci_from_handle(ci: Any) -> ComputeInstance:
        info = pynvml.nvmlComputeInstanceGetInfo(ci)
        placement = Placement(int(info.placement.start), int(info.placement.size))
        profile_id = int(info.profileId)
        if profile_id in _REV_CI:  # report in the catalog's convention: by compute-slice count
            profile_id = CI_PROFILE_CONSTANTS.get(placement.size, profile_id)
        return ComputeInstance(id=int(info.id), profile_id=profile_id, placement=placement)

    def _compute_instances(self, gi: Any) -> tuple[ComputeInstance, ...]:
        found: dict[int, ComputeInstance] = {}
        for ci_profile in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            handles = (pynvml.c_nvmlComputeInstance_t * _MAX_ITEMS)()
            count = ctypes.c_uint(_MAX_ITEMS)
            try:
                pynvml.nvmlGpuInstanceGetComputeInstances(gi, ci_profile, handles, ctypes.byref(count))
            except pynvml.NVMLError as err:
                if err.value in _SKIP:
                    continue
                raise
            for i in range(count.value):
                ci = self._ci_from_handle(handles[i])
                found[ci.id] = ci
        return tuple(sorted(found.values(), key=lambda c: (c.placement, c.id)))

    # -- GpuBackend: reads ----------------------------------------------------------------------------------------

    def gpus(self) -> list[GpuInfo]:
        self._start("gpus")
        out: list[GpuInfo] = []
        with self._nvml("gpus"):
            count = pynvml.nvmlDeviceGetCount()
        for index in range(count):
            with self._nvml("gpus", index):
                dev = pynvml.nvmlDeviceGetHandleByIndex(index)
                pci = pynvml.nvmlDeviceGetPciInfo(dev)
                memory = pynvml.nvmlDeviceGetMemoryInfo(dev)
                try:
                    pynvml.nvmlDeviceGetMigMode(dev)
                    capable = True
                except pynvml.NVMLError as err:
                    if err.value != pynvml.NVML_ERROR_NOT_SUPPORTED:
                        raise
                    capable = False
                out.append(
                    GpuInfo(
                        index=index,
                        uuid=_text(pynvml.nvmlDeviceGetUUID(dev)),
                        pci_bus_id=_text(pci.busId),
                        pci=PciId.from_device_vendor(int(pci.pciDeviceId), int(pci.pciSubSystemId)),
                        product_name=_text(pynvml.nvmlDeviceGetName(dev)),
                        memory_mib=int(memory.total) // (1024 * 1024),
                        mig_capable=capable,
                    )
                )
        return out

    def mig_mode(self, index: int) -> MigModeState:
        self._start("mig_mode")
        dev = self._device("mig_mode", index)
        with self._nvml("mig_mode", index):
            current, pending = pynvml.nvmlDeviceGetMigMode(dev)
        return MigModeState(current=MigMode(int(current)), pending=MigMode(int(pending)))

    def processes(self, index: int) -> list[int]:
        self._start("processes")
        dev = self._device("processes", index)
        pids: set[int] = set()
        with self._nvml("processes", index):
            for kind in ("Compute", "Graphics"):
                pids.update(int(p.pid) for p in self._running(dev, kind))
        return sorted(pids)

    @staticmethod
    def _running(dev: Any, kind: str) -> list[Any]:
        """Compute or graphics processes: the _v3 call, or _v2 on older drivers; none where unsupported."""
        for version in ("_v3", "_v2"):
            try:
                procs: list[Any] = getattr(pynvml, f"nvmlDeviceGet{kind}RunningProcesses{version}")(dev)
                return procs
            except pynvml.NVMLError as err:
                if err.value == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                    continue
                if err.value == pynvml.NVML_ERROR_NOT_SUPPORTED and kind == "Graphics":
                    return []
                raise
        if kind == "Graphics":
            return []
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    def gpu_instances(self, index: int) -> list[GpuInstance]:
        op = "gpu_instances"
        self._start(op)
        dev = self._device(op, index)
        table = self._gi_table(op, index, dev)
        out: dict[int, GpuInstance] = {}
        with self._nvml(op, index):
            for profile in table.gpu_instance_profiles:
                handles = (pynvml.c_nvmlGpuInstance_t * _MAX_ITEMS)()
                count = ctypes.c_uint(_MAX_ITEMS)
                pynvml.nvmlDeviceGetGpuInstances(dev, profile.id, handles, ctypes.byref(count))
                for i in range(count.value):
                    gi_id, profile_id, placement = self._gi_info(handles[i])
                    out[gi_id] = GpuInstance(gi_id, profile_id, placement, self._compute_instances(handles[i]))
        return sorted(out.values(), key=lambda g: (g.placement, g.id))

    def profile_table(self, index: int) -> ProfileTable:
        op = "profile_table"
        self._start(op)
        dev = self._device(op, index)
        gi_table = self._gi_table(op, index, dev)
        with self._nvml(op, index):
            uuid = _text(pynvml.nvmlDeviceGetUUID(dev))
            self._probe_ci_tables(dev, uuid, gi_table)
            catalog_table = self._catalog_table(dev)
        cis: dict[int, dict[int, ComputeInstanceProfile]] = {}
        fallback: list[int] = []
        for slices in sorted({p.slices for p in gi_table.gpu_instance_profiles}):
            probed = self._ci_tables.get((uuid, slices))
            if probed:
                cis[slices] = probed
                continue
            fallback.append(slices)
            known = catalog_table.compute_instance_profiles.get(slices) if catalog_table else None
            cis[slices] = dict(known) if known else heuristic_ci_table(slices)
        if fallback:
            log.info(
                "event=ci_profiles_from_catalog gpu=%s gi_slices=%s reason=%s",
                index,
                ",".join(str(s) for s in fallback),
                "no GPU instance of that size exists to query the device",
            )
        return ProfileTable(
            model=gi_table.model,
            compute_slices=gi_table.compute_slices,
            memory_slices=gi_table.memory_slices,
            gpu_instance_profiles=gi_table.gpu_instance_profiles,
            compute_instance_profiles=cis,
        )

    # -- profile tables -------------------------------------------------------------------------------------------

    def _catalog_table(self, dev: Any) -> ProfileTable | None:
        pci = pynvml.nvmlDeviceGetPciInfo(dev)
        model = self.catalog.by_pci_id(PciId.from_device_vendor(int(pci.pciDeviceId)))
        return model.table if model else None

    def _gi_table(self, op: str, index: int, dev: Any) -> ProfileTable:
        with self._nvml(op, index):
            uuid = _text(pynvml.nvmlDeviceGetUUID(dev))
            if uuid in self._gi_tables:
                return self._gi_tables[uuid]
            total_bytes = int(pynvml.nvmlDeviceGetMemoryInfo(dev).total)
            catalog_table = self._catalog_table(dev)
            profiles = self._read_gi_profiles(dev, total_bytes)
        if not profiles:
            if catalog_table is None:
                raise DeviceError(op, NvmlCode.NOT_SUPPORTED, "the device reports no MIG profiles", index)
            log.warning(
                "event=gi_profiles_from_catalog gpu=%s model=%s reason=%s",
                index,
                catalog_table.model,
                "the device reports no GPU-instance profiles (MIG disabled on an older driver?)",
            )
            return catalog_table  # not cached: read the device again once it reports profiles
        table = ProfileTable(
            model=catalog_table.model if catalog_table else _text(pynvml.nvmlDeviceGetName(dev)),
            compute_slices=catalog_table.compute_slices if catalog_table else max(p.slices for p in profiles),
            memory_slices=max(pl.end for p in profiles for pl in p.placements),
            gpu_instance_profiles=tuple(profiles),
            compute_instance_profiles={},
        )
        self._gi_tables[uuid] = table
        return table

    def _read_gi_profiles(self, dev: Any, total_bytes: int) -> list[GpuInstanceProfile]:
        found: list[tuple[str, Any, tuple[Placement, ...]]] = []
        for index in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
            constant = GI_CONSTANT_NAMES.get(index)
            if constant is None:
                continue
            try:
                info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(dev, index)
            except pynvml.NVMLError as err:
                if err.value == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:  # an older driver without the V call
                    try:
                        info = pynvml.nvmlDeviceGetGpuInstanceProfileInfo(dev, index, version=1)
                    except pynvml.NVMLError as err1:
                        if err1.value in _SKIP:
                            continue
                        raise
                elif err.value in _SKIP:
                    continue
                else:
                    raise
            if int(info.instanceCount) == 0:
                continue
            placements = (pynvml.c_nvmlGpuInstancePlacement_t * _MAX_ITEMS)()
            count = ctypes.c_uint(_MAX_ITEMS)
            pynvml.nvmlDeviceGetGpuInstancePossiblePlacements(dev, int(info.id), placements, ctypes.byref(count))
            found.append(
                (
                    constant,
                    info,
                    tuple(Placement(int(placements[i].start), int(placements[i].size)) for i in range(count.value)),
                )
            )
        profiles: list[GpuInstanceProfile] = []
        for constant, info, placements in found:
            slices = int(info.sliceCount)
            memory_mib = int(info.memorySizeMB)
            name = name_from_info(_text(getattr(info, "name", b"")))
            if name is None or name.gpu != slices:
                name = canonical_gi_name(constant, slices, memory_mib, total_bytes)
            profiles.append(
                GpuInstanceProfile(
                    name=name,
                    constant=constant,
                    id=int(info.id),
                    slices=slices,
                    memory_mib=memory_mib,
                    multiprocessors=int(info.multiprocessorCount),
                    engines=Engines(
                        copy=int(info.copyEngineCount),
                        decoder=int(info.decoderCount),
                        encoder=int(info.encoderCount),
                        jpeg=int(info.jpegCount),
                        ofa=int(info.ofaCount),
                    ),
                    max_count=int(info.instanceCount),
                    placements=placements,
                )
            )
        # nvml.h: an ALL_ME profile prevents every other profile but the NO_ME ones.
        no_me = frozenset(p.name for p in profiles if p.constant.endswith("_NO_ME"))
        return [replace(p, coexists_only_with=no_me) if p.constant.endswith("_ALL_ME") else p for p in profiles]

    def _probe_ci_tables(self, dev: Any, uuid: str, table: ProfileTable) -> None:
        """Read CI profiles inside existing GPU instances (one per GI size not probed yet)."""
        try:
            current, _ = pynvml.nvmlDeviceGetMigMode(dev)
        except pynvml.NVMLError:
            return
        if int(current) != pynvml.NVML_DEVICE_MIG_ENABLE:
            return
        for profile in table.gpu_instance_profiles:
            if (uuid, profile.slices) in self._ci_tables:
                continue
            handles = (pynvml.c_nvmlGpuInstance_t * _MAX_ITEMS)()
            count = ctypes.c_uint(_MAX_ITEMS)
            try:
                pynvml.nvmlDeviceGetGpuInstances(dev, profile.id, handles, ctypes.byref(count))
            except pynvml.NVMLError as err:
                if err.value in _SKIP:
                    continue
                raise
            if count.value == 0:
                continue
            gi = handles[0]
            cis: dict[int, ComputeInstanceProfile] = {}
            for ci_index in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
                try:
                    info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                        gi, ci_index, pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
                    )
                except pynvml.NVMLError as err:
                    if err.value in _SKIP:
                        continue
                    raise
                slices = int(info.sliceCount)
                if slices not in CI_PROFILE_CONSTANTS or slices > profile.slices:
                    continue
                previous = cis.get(slices)
                if previous is None or int(info.instanceCount) > previous.max_count:
                    cis[slices] = ComputeInstanceProfile(slices, profile.slices, int(info.instanceCount))
            if cis:
                self._ci_tables[(uuid, profile.slices)] = cis

    # -- GpuBackend: changes --------------------------------------------------------------------------------------

    def set_mig_mode(self, index: int, mode: MigMode) -> NvmlCode:
        self._start("set_mig_mode")
        dev = self._device("set_mig_mode", index)
        with self._nvml("set_mig_mode", index):
            status = pynvml.nvmlDeviceSetMigMode(dev, int(mode))
        return nvml_code(int(status))

    def reset(self, indices: Sequence[int]) -> None:
        self._start("reset")
        wanted = list(dict.fromkeys(indices))
        if not wanted:
            return
        bus_ids: list[str] = []
        for index in wanted:
            dev = self._device("reset", index)
            with self._nvml("reset", index):
                bus_ids.append(_text(pynvml.nvmlDeviceGetPciInfo(dev).busId))
        gpu = wanted[0] if len(wanted) == 1 else None
        argv = [self._nvidia_smi, "-r", "-i", ",".join(bus_ids)]
        try:
            result = self._run(argv, self._reset_timeout_s)
        except FileNotFoundError as exc:
            raise ResetError("reset", NvmlCode.UNKNOWN, f"{self._nvidia_smi} not found: {exc}", gpu) from exc
        except subprocess.TimeoutExpired as exc:
            raise ResetError(
                "reset", NvmlCode.TIMEOUT, f"{' '.join(argv)} took over {self._reset_timeout_s:g}s", gpu
            ) from exc
        if result.returncode != 0:
            output = " ".join(f"{result.stdout or ''} {result.stderr or ''}".split())
            code = reset_failure_code(output)
            raise ResetError("reset", code, f"{' '.join(argv)} exited {result.returncode}: {output}", gpu)

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> GpuInstance:
        op = "create_gpu_instance"
        self._start(op)
        dev = self._device(op, index)
        with self._nvml(op, index):
            c_placement = pynvml.c_nvmlGpuInstancePlacement_t(placement.start, placement.size)
            gi = pynvml.nvmlDeviceCreateGpuInstanceWithPlacement(dev, profile_id, ctypes.byref(c_placement))
            gi_id, got_profile, got_placement = self._gi_info(gi)
        return GpuInstance(id=gi_id, profile_id=got_profile, placement=got_placement)

    def destroy_gpu_instance(self, index: int, gpu_instance_id: int) -> None:
        op = "destroy_gpu_instance"
        self._start(op)
        gi = self._gpu_instance(op, index, gpu_instance_id)
        with self._nvml(op, index):
            pynvml.nvmlGpuInstanceDestroy(gi)

    def _device_ci_profile(self, gi: Any, profile_id: int, slices: int) -> int:
        """The CI profile ID this GI offers for the request: `profile_id` itself, or its REV1 twin of the same size."""
        offered: dict[int, int] = {}
        for ci_index in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            try:
                info = pynvml.nvmlGpuInstanceGetComputeInstanceProfileInfo(
                    gi, ci_index, pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
                )
            except pynvml.NVMLError as err:
                if err.value in _SKIP:
                    continue
                raise
            offered[int(info.id)] = int(info.sliceCount)
        if profile_id in offered or not offered:
            return profile_id
        return next((pid for pid, s in sorted(offered.items()) if s == slices), profile_id)

    def create_compute_instance(
        self, index: int, gpu_instance_id: int, profile_id: int, placement: Placement
    ) -> ComputeInstance:
        op = "create_compute_instance"
        self._start(op)
        gi = self._gpu_instance(op, index, gpu_instance_id)
        with self._nvml(op, index):
            device_profile = self._device_ci_profile(gi, profile_id, placement.size)
            c_placement = pynvml.c_nvmlComputeInstancePlacement_t(placement.start, placement.size)
            ci = pynvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, device_profile, ctypes.byref(c_placement))
            return self._ci_from_handle(ci)

    def destroy_compute_instance(self, index: int, gpu_instance_id: int, compute_instance_id: int) -> None:
        op = "destroy_compute_instance"
        self._start(op)
        gi = self._gpu_instance(op, index, gpu_instance_id)
        with self._nvml(op, index):
            ci = pynvml.nvmlGpuInstanceGetComputeInstanceById(gi, compute_instance_id)
            pynvml.nvmlComputeInstanceDestroy(ci)
