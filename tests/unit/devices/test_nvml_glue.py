"""NvmlBackend's glue, without a GPU: a fake object in `pynvml.nvmlLib` implements the C functions the real pynvml
wrappers look up, taking and filling ctypes arguments as libnvidia-ml would."""

from __future__ import annotations

import ctypes
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pynvml
import pytest

from mig_manager.catalog import Placement, default_catalog
from mig_manager.devices import DeviceError, GpuBackend, MigMode, MigModeState, NvmlCode, ResetError
from mig_manager.devices.nvml import NO_LIBRARY_MESSAGE, NvmlBackend, nvml_code, reset_failure_code
from mig_manager.devices.profiles import compare_with_catalog

OK = pynvml.NVML_SUCCESS
MIB = 1024 * 1024


@dataclass
class FakeGi:
    id: int
    profile_id: int
    placement: tuple[int, int]
    cis: dict[int, tuple[int, tuple[int, int]]] = field(default_factory=dict)  # id -> (profile id, placement)


@dataclass
class FakeGpu:
    """One GPU, with the GI profile table of a catalog model (constant -> info as the device reports it)."""

    model: str
    uuid: str
    bus_id: str
    mig: list[int] = field(default_factory=lambda: [0, 0])
    activation: int = OK
    processes: list[int] = field(default_factory=list)
    gis: dict[int, FakeGi] = field(default_factory=dict)
    with_names: bool = True

    def __post_init__(self) -> None:
        self.catalog_model = default_catalog().lookup(self.model)
        self.profiles = {p.nvml_index: p for p in self.catalog_model.table.gpu_instance_profiles}


def _ref(arg: Any) -> Any:
    return arg._obj  # the object behind ctypes.byref()


def _int(arg: Any) -> int:
    return int(arg.value) if hasattr(arg, "value") else int(arg)


def _set_pointer(target: Any, value: int) -> None:
    ctypes.cast(ctypes.pointer(target), ctypes.POINTER(ctypes.c_void_p))[0] = value


class FakeNvmlLib:
    """The subset of libnvidia-ml.so the backend uses. `fail[name] = code` makes a function return that code."""

    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        self.fail: dict[str, int] = {}
        self.called: list[str] = []
        self._handles: dict[int, Any] = {}
        self._next = 0x1000

    def __getattr__(self, name: str) -> Any:
        impl = getattr(type(self), "_" + name, None)
        if impl is None:
            raise AttributeError(name)  # pynvml turns this into NVML_ERROR_FUNCTION_NOT_FOUND

        def call(*args: Any) -> Any:
            self.called.append(name)
            if name in self.fail:
                return self.fail[name]
            return impl(self, *args)

        return call

    # handles are opaque pointers; the fake maps their values back to objects
    def _handle(self, obj: Any) -> int:
        for value, known in self._handles.items():
            if known is obj:
                return value
        self._next += 0x10
        self._handles[self._next] = obj
        return self._next

    def _obj(self, handle: Any) -> Any:
        return self._handles[int(ctypes.cast(handle, ctypes.c_void_p).value or 0)]

    def _gpu_of(self, gi: FakeGi) -> FakeGpu:
        return next(g for g in self.gpus if gi in g.gis.values())

    # -- C functions ------------------------------------------------------------------------------------------------

    def _nvmlInitWithFlags(self, flags: int) -> int:
        return OK

    def _nvmlShutdown(self) -> int:
        return OK

    def _nvmlErrorString(self, code: int) -> bytes:
        return f"fake error {code}".encode()

    def _nvmlDeviceGetCount_v2(self, count: Any) -> int:
        _ref(count).value = len(self.gpus)
        return OK

    def _nvmlDeviceGetHandleByIndex_v2(self, index: Any, handle: Any) -> int:
        i = _int(index)
        if not 0 <= i < len(self.gpus):
            return pynvml.NVML_ERROR_INVALID_ARGUMENT
        _set_pointer(_ref(handle), self._handle(self.gpus[i]))
        return OK

    def _nvmlDeviceGetName(self, handle: Any, buf: Any, size: Any) -> int:
        buf.value = self._obj(handle).catalog_model.product_name.encode()
        return OK

    def _nvmlDeviceGetUUID(self, handle: Any, buf: Any, size: Any) -> int:
        buf.value = self._obj(handle).uuid.encode()
        return OK

    def _nvmlDeviceGetPciInfo_v3(self, handle: Any, info: Any) -> int:
        gpu = self._obj(handle)
        pci = gpu.catalog_model.pci_id
        _ref(info).busId = gpu.bus_id.encode()
        _ref(info).pciDeviceId = pci.device << 16 | pci.vendor
        _ref(info).pciSubSystemId = 0x16C110DE
        return OK

    def _nvmlDeviceGetMemoryInfo(self, handle: Any, mem: Any) -> int:
        _ref(mem).total = self._obj(handle).catalog_model.memory_mib * MIB
        return OK

    def _nvmlDeviceGetMigMode(self, handle: Any, current: Any, pending: Any) -> int:
        gpu = self._obj(handle)
        _ref(current).value, _ref(pending).value = gpu.mig
        return OK

    def _nvmlDeviceSetMigMode(self, handle: Any, mode: Any, status: Any) -> int:
        gpu = self._obj(handle)
        gpu.mig[1] = _int(mode)
        _ref(status).value = gpu.activation
        if gpu.activation == OK:
            gpu.mig[0] = gpu.mig[1]
        return OK

    def _profile_by_id(self, gpu: FakeGpu, profile_id: int) -> Any:
        return next((p for p in gpu.profiles.values() if p.id == profile_id), None)

    def _nvmlDeviceGetGpuInstanceProfileInfoV(self, handle: Any, index: Any, info: Any) -> int:
        gpu = self._obj(handle)
        p = gpu.profiles.get(_int(index))
        if p is None:
            return pynvml.NVML_ERROR_NOT_SUPPORTED if _int(index) < 12 else pynvml.NVML_ERROR_INVALID_ARGUMENT
        out = _ref(info)
        assert out.version == pynvml.nvmlGpuInstanceProfileInfo_v2
        out.id, out.sliceCount, out.instanceCount, out.memorySizeMB = p.id, p.slices, p.max_count, p.memory_mib
        out.multiprocessorCount, out.copyEngineCount, out.decoderCount = p.multiprocessors, p.engines.copy, 1
        out.name = f"MIG {p.name}".encode() if gpu.with_names else b""
        return OK

    def _nvmlDeviceGetGpuInstancePossiblePlacements_v2(self, handle: Any, pid: Any, arr: Any, count: Any) -> int:
        p = self._profile_by_id(self._obj(handle), _int(pid))
        if p is None:
            return pynvml.NVML_ERROR_INVALID_ARGUMENT
        assert _ref(count).value >= len(p.placements)
        for i, pl in enumerate(p.placements):
            arr[i].start, arr[i].size = pl.start, pl.size
        _ref(count).value = len(p.placements)
        return OK

    def _nvmlDeviceCreateGpuInstanceWithPlacement(self, handle: Any, pid: Any, placement: Any, out: Any) -> int:
        gpu = self._obj(handle)
        if gpu.mig[0] != 1:
            return pynvml.NVML_ERROR_NOT_SUPPORTED
        p = self._profile_by_id(gpu, _int(pid))
        pl = _ref(placement)
        if p is None or Placement(pl.start, pl.size) not in p.placements:
            return pynvml.NVML_ERROR_INVALID_ARGUMENT
        for gi in gpu.gis.values():
            if Placement(*gi.placement).overlaps(Placement(pl.start, pl.size)):
                return pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES
        gi_id = max(gpu.gis, default=0) + 1
        gpu.gis[gi_id] = FakeGi(gi_id, p.id, (pl.start, pl.size))
        _set_pointer(_ref(out), self._handle(gpu.gis[gi_id]))
        return OK

    def _nvmlDeviceGetGpuInstances(self, handle: Any, pid: Any, arr: Any, count: Any) -> int:
        gpu = self._obj(handle)
        if gpu.mig[0] != 1:
            return pynvml.NVML_ERROR_NOT_SUPPORTED
        found = [gi for gi in gpu.gis.values() if gi.profile_id == _int(pid)]
        for i, gi in enumerate(found):
            arr[i] = ctypes.cast(ctypes.c_void_p(self._handle(gi)), pynvml.c_nvmlGpuInstance_t)
        _ref(count).value = len(found)
        return OK

    def _nvmlDeviceGetGpuInstanceById(self, handle: Any, gi_id: Any, out: Any) -> int:
        gi = self._obj(handle).gis.get(_int(gi_id))
        if gi is None:
            return pynvml.NVML_ERROR_NOT_FOUND
        _set_pointer(_ref(out), self._handle(gi))
        return OK

    def _nvmlGpuInstanceGetInfo(self, handle: Any, info: Any) -> int:
        gi = self._obj(handle)
        out = _ref(info)
        out.id, out.profileId = gi.id, gi.profile_id
        out.placement.start, out.placement.size = gi.placement
        return OK

    def _nvmlGpuInstanceDestroy(self, handle: Any) -> int:
        gi = self._obj(handle)
        if gi.cis:
            return pynvml.NVML_ERROR_IN_USE
        del self._gpu_of(gi).gis[gi.id]
        return OK

    def _ci_profiles(self, gi: FakeGi) -> dict[int, tuple[int, int, int]]:
        """CI index -> (id, slices, count); a double-memory 1g (GI profile 15) offers its 1c as REV1 (ID 7)."""
        gpu = self._gpu_of(gi)
        gi_profile = self._profile_by_id(gpu, gi.profile_id)
        table = gpu.catalog_model.table.compute_instance_profiles[gi_profile.slices]
        out = {c.id: (c.id, c.slices, c.max_count) for c in table.values()}
        if gi.profile_id == 15:
            out = {7: (7, 1, 1)}
        return out

    def _nvmlGpuInstanceGetComputeInstanceProfileInfoV(self, handle: Any, index: Any, eng: Any, info: Any) -> int:
        found = self._ci_profiles(self._obj(handle)).get(_int(index))
        if found is None:
            return pynvml.NVML_ERROR_NOT_SUPPORTED
        out = _ref(info)
        out.id, out.sliceCount, out.instanceCount = found
        return OK

    def _nvmlGpuInstanceCreateComputeInstanceWithPlacement(self, handle: Any, pid: Any, pl: Any, out: Any) -> int:
        gi = self._obj(handle)
        if _int(pid) not in {v[0] for v in self._ci_profiles(gi).values()}:
            return pynvml.NVML_ERROR_INVALID_ARGUMENT
        ci_id = max(gi.cis, default=-1) + 1
        gi.cis[ci_id] = (_int(pid), (_ref(pl).start, _ref(pl).size))
        _set_pointer(_ref(out), self._handle((gi, ci_id)))
        return OK

    def _nvmlGpuInstanceGetComputeInstances(self, handle: Any, pid: Any, arr: Any, count: Any) -> int:
        gi = self._obj(handle)
        if _int(pid) not in {v[0] for v in self._ci_profiles(gi).values()}:
            return pynvml.NVML_ERROR_NOT_SUPPORTED
        found = [ci_id for ci_id, (p, _) in gi.cis.items() if p == _int(pid)]
        for i, ci_id in enumerate(found):
            arr[i] = ctypes.cast(ctypes.c_void_p(self._handle((gi, ci_id))), pynvml.c_nvmlComputeInstance_t)
        _ref(count).value = len(found)
        return OK

    def _nvmlGpuInstanceGetComputeInstanceById(self, handle: Any, ci_id: Any, out: Any) -> int:
        gi = self._obj(handle)
        if _int(ci_id) not in gi.cis:
            return pynvml.NVML_ERROR_NOT_FOUND
        _set_pointer(_ref(out), self._handle((gi, _int(ci_id))))
        return OK

    def _nvmlComputeInstanceGetInfo_v2(self, handle: Any, info: Any) -> int:
        gi, ci_id = self._obj(handle)
        profile_id, (start, size) = gi.cis[ci_id]
        out = _ref(info)
        out.id, out.profileId = ci_id, profile_id
        out.placement.start, out.placement.size = start, size
        return OK

    def _nvmlComputeInstanceDestroy(self, handle: Any) -> int:
        gi, ci_id = self._obj(handle)
        del gi.cis[ci_id]
        return OK

    def _nvmlDeviceGetComputeRunningProcesses_v3(self, handle: Any, count: Any, arr: Any) -> int:
        procs = self._obj(handle).processes
        if not procs:
            _ref(count).value = 0
            return OK
        if arr is None:
            _ref(count).value = len(procs)
            return pynvml.NVML_ERROR_INSUFFICIENT_SIZE
        for i, pid in enumerate(procs):
            arr[i].pid = pid
            arr[i].usedGpuMemory = 1
        _ref(count).value = len(procs)
        return OK


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvmlLib:
    lib = FakeNvmlLib(
        [
            FakeGpu("H100-SXM5-80GB", "GPU-aaaa", "00000000:1B:00.0"),
            FakeGpu("A100-SXM4-40GB", "GPU-bbbb", "00000000:3B:00.0", mig=[1, 1], with_names=False),
        ]
    )
    monkeypatch.setattr(pynvml, "nvmlLib", lib)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    return lib


def _code(exc: pytest.ExceptionInfo[DeviceError]) -> NvmlCode:
    return exc.value.code


def test_gpus_identity(fake: FakeNvmlLib) -> None:
    backend = NvmlBackend()
    assert isinstance(backend, GpuBackend)
    assert fake.called == []  # nothing loaded before the first call
    gpus = backend.gpus()
    assert fake.called[0] == "nvmlInitWithFlags"
    assert [(g.index, g.uuid, g.pci_bus_id, str(g.pci)) for g in gpus] == [
        (0, "GPU-aaaa", "00000000:1B:00.0", "0x233010DE:0x16C110DE"),
        (1, "GPU-bbbb", "00000000:3B:00.0", "0x20B010DE:0x16C110DE"),
    ]
    assert [g.product_name for g in gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
    assert gpus[0].memory_mib == 81559 and all(g.mig_capable for g in gpus)
    fake.fail["nvmlDeviceGetMigMode"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    assert [g.mig_capable for g in backend.gpus()] == [False, False]
    assert fake.called.count("nvmlInitWithFlags") == 1
    assert backend.calls == ["gpus", "gpus"]


@pytest.mark.parametrize("model", ["H100-SXM5-80GB", "A100-SXM4-40GB", "A30-PCIE-24GB", "RTX-PRO-6000-BLACKWELL"])
@pytest.mark.parametrize("with_names", [True, False])
def test_profile_table_from_the_device(monkeypatch: pytest.MonkeyPatch, model: str, with_names: bool) -> None:
    """Index vs ID: the table carries the reported IDs; names from the info field or go-nvlib's formula."""
    lib = FakeNvmlLib([FakeGpu(model, "GPU-x", "00000000:1B:00.0", with_names=with_names)])
    monkeypatch.setattr(pynvml, "nvmlLib", lib)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    table = NvmlBackend().profile_table(0)
    expected = default_catalog().lookup(model).table
    assert compare_with_catalog(table, model) == []
    assert [(p.id, str(p.name), p.constant, p.placements, p.max_count) for p in table.gpu_instance_profiles] == [
        (p.id, str(p.name), p.constant, p.placements, p.max_count)
        for p in sorted(expected.gpu_instance_profiles, key=lambda p: p.nvml_index)
    ]
    assert table.memory_slices == expected.memory_slices and table.model == expected.model
    all_me = [p for p in table.gpu_instance_profiles if p.constant.endswith("ALL_ME")]
    for p in all_me:
        assert p.coexists_only_with == frozenset(q.name for q in table.gpu_instance_profiles if "NO_ME" in q.constant)
    # queried by index (the constant), not by ID
    assert lib.called.count("nvmlDeviceGetGpuInstanceProfileInfoV") == pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT


def test_profile_index_differs_from_id(fake: FakeNvmlLib) -> None:
    table = NvmlBackend().profile_table(0)
    by_name = {str(p.name): p for p in table.gpu_instance_profiles}
    assert (by_name["1g.10gb"].nvml_index, by_name["1g.10gb"].id) == (0, 19)
    assert (by_name["1g.20gb"].nvml_index, by_name["1g.20gb"].id) == (9, 15)
    assert (by_name["7g.80gb"].nvml_index, by_name["7g.80gb"].id) == (4, 0)


def test_older_driver_without_the_v_call(fake: FakeNvmlLib, monkeypatch: pytest.MonkeyPatch) -> None:
    def v1(self: FakeNvmlLib, handle: Any, index: Any, info: Any) -> int:
        p = self._obj(handle).profiles.get(_int(index))
        if p is None:
            return pynvml.NVML_ERROR_NOT_SUPPORTED
        out = _ref(info)
        out.id, out.sliceCount, out.instanceCount, out.memorySizeMB = p.id, p.slices, p.max_count, p.memory_mib
        return OK

    monkeypatch.setattr(FakeNvmlLib, "_nvmlDeviceGetGpuInstanceProfileInfo", v1, raising=False)
    monkeypatch.delattr(FakeNvmlLib, "_nvmlDeviceGetGpuInstanceProfileInfoV")
    table = NvmlBackend().profile_table(0)
    assert compare_with_catalog(table, "H100") == []


def test_profile_table_fallbacks(fake: FakeNvmlLib, caplog: pytest.LogCaptureFixture) -> None:
    backend = NvmlBackend()
    caplog.set_level("INFO")
    fake.fail["nvmlDeviceGetGpuInstanceProfileInfoV"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    table = backend.profile_table(0)  # MIG disabled on an older driver: the catalog's table, logged
    assert table == default_catalog().lookup("H100").table
    assert "gi_profiles_from_catalog" in caplog.text
    del fake.fail["nvmlDeviceGetGpuInstanceProfileInfoV"]
    caplog.clear()
    device_table = backend.profile_table(0)  # not cached: read from the device now
    assert "gi_profiles_from_catalog" not in caplog.text
    assert compare_with_catalog(device_table, "H100") == []
    assert "ci_profiles_from_catalog" in caplog.text  # no GI exists to ask for CI profiles


def test_ci_profiles_read_from_an_existing_instance(fake: FakeNvmlLib) -> None:
    backend = NvmlBackend()
    fake.gpus[0].mig = [1, 1]
    gi = backend.create_gpu_instance(0, 14, Placement(0, 2))  # 2g.20gb
    assert gi.placement == Placement(0, 2)
    table = backend.profile_table(0)
    assert {c: p.max_count for c, p in table.compute_instance_profiles[2].items()} == {1: 2, 2: 1}
    assert "nvmlGpuInstanceGetComputeInstanceProfileInfoV" in fake.called


def test_create_with_placement_and_read_back(fake: FakeNvmlLib) -> None:
    backend = NvmlBackend()
    gi = backend.create_gpu_instance(1, 9, Placement(4, 4))  # A100 3g.20gb, MIG already on
    assert (gi.id, gi.profile_id, gi.placement, gi.compute_instances) == (1, 9, Placement(4, 4), ())
    ci = backend.create_compute_instance(1, gi.id, 1, Placement(0, 2))
    ci2 = backend.create_compute_instance(1, gi.id, 0, Placement(2, 1))
    assert (ci.id, ci.profile_id, ci.placement) == (0, 1, Placement(0, 2))
    assert "nvmlGpuInstanceCreateComputeInstanceWithPlacement" in fake.called
    one = backend.create_gpu_instance(1, 19, Placement(0, 1))
    listed = backend.gpu_instances(1)
    assert [(g.id, g.profile_id, g.placement) for g in listed] == [(2, 19, Placement(0, 1)), (1, 9, Placement(4, 4))]
    assert listed[1].compute_instances == (ci, ci2)
    with pytest.raises(DeviceError) as exc:
        backend.destroy_gpu_instance(1, gi.id)
    assert _code(exc) is NvmlCode.IN_USE and exc.value.gpu == 1
    backend.destroy_compute_instance(1, gi.id, ci.id)
    backend.destroy_compute_instance(1, gi.id, ci2.id)
    backend.destroy_gpu_instance(1, gi.id)
    backend.destroy_gpu_instance(1, one.id)
    assert backend.gpu_instances(1) == []


def test_rev1_compute_instance_of_double_memory_gi(fake: FakeNvmlLib) -> None:
    backend = NvmlBackend()
    gi = backend.create_gpu_instance(1, 15, Placement(6, 2))  # A100 1g.10gb (double memory)
    ci = backend.create_compute_instance(1, gi.id, 0, Placement(0, 1))
    assert fake.gpus[1].gis[gi.id].cis[0][0] == 7  # the device's REV1 profile was used
    assert ci.profile_id == 0  # reported in the catalog's convention
    assert backend.gpu_instances(1)[0].compute_instances == (ci,)


def test_mig_mode_and_activation_status(fake: FakeNvmlLib) -> None:
    backend = NvmlBackend()
    assert backend.mig_mode(0) == MigModeState(MigMode.DISABLED, MigMode.DISABLED)
    assert backend.set_mig_mode(0, MigMode.ENABLED) is NvmlCode.SUCCESS
    assert backend.mig_mode(0) == MigModeState(MigMode.ENABLED, MigMode.ENABLED)
    fake.gpus[1].activation = pynvml.NVML_ERROR_RESET_REQUIRED
    assert backend.set_mig_mode(1, MigMode.DISABLED) is NvmlCode.RESET_REQUIRED
    assert backend.mig_mode(1) == MigModeState(MigMode.ENABLED, MigMode.DISABLED)
    fake.gpus[1].activation = pynvml.NVML_ERROR_IN_USE
    assert backend.set_mig_mode(1, MigMode.DISABLED) is NvmlCode.IN_USE


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES, NvmlCode.INSUFFICIENT_RESOURCES),
        (pynvml.NVML_ERROR_INVALID_ARGUMENT, NvmlCode.INVALID_ARGUMENT),
        (pynvml.NVML_ERROR_NOT_SUPPORTED, NvmlCode.NOT_SUPPORTED),
        (pynvml.NVML_ERROR_NO_PERMISSION, NvmlCode.NO_PERMISSION),
        (pynvml.NVML_ERROR_IN_USE, NvmlCode.IN_USE),
        (pynvml.NVML_ERROR_GPU_IS_LOST, NvmlCode.GPU_IS_LOST),
        (pynvml.NVML_ERROR_NOT_FOUND, NvmlCode.NOT_FOUND),
        (pynvml.NVML_ERROR_INVALID_STATE, NvmlCode.UNKNOWN),
    ],
)
def test_error_code_mapping(fake: FakeNvmlLib, value: int, code: NvmlCode) -> None:
    fake.gpus[0].mig = [1, 1]
    fake.fail["nvmlDeviceCreateGpuInstanceWithPlacement"] = value
    with pytest.raises(DeviceError) as exc:
        NvmlBackend().create_gpu_instance(0, 19, Placement(0, 1))
    assert (exc.value.op, exc.value.code, exc.value.gpu) == ("create_gpu_instance", code, 0)
    assert f"NVML return value {value}" in str(exc.value)
    assert nvml_code(value) is code


def test_real_rules_surface_as_codes(fake: FakeNvmlLib) -> None:
    backend = NvmlBackend()
    with pytest.raises(DeviceError) as exc:  # MIG disabled
        backend.create_gpu_instance(0, 19, Placement(0, 1))
    assert _code(exc) is NvmlCode.NOT_SUPPORTED
    with pytest.raises(DeviceError) as exc:
        backend.mig_mode(7)
    assert _code(exc) is NvmlCode.INVALID_ARGUMENT and exc.value.gpu == 7
    with pytest.raises(DeviceError) as exc:
        backend.destroy_gpu_instance(1, 42)
    assert _code(exc) is NvmlCode.NOT_FOUND


def test_processes(fake: FakeNvmlLib, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = NvmlBackend()
    assert backend.processes(0) == []
    fake.gpus[0].processes = [300, 200]
    assert backend.processes(0) == [200, 300]
    assert "nvmlDeviceGetGraphicsRunningProcesses_v3" not in fake.called  # absent from the fake: skipped
    # an older driver without the _v3 call
    monkeypatch.setattr(
        FakeNvmlLib,
        "_nvmlDeviceGetComputeRunningProcesses_v2",
        FakeNvmlLib._nvmlDeviceGetComputeRunningProcesses_v3,
        raising=False,
    )
    monkeypatch.delattr(FakeNvmlLib, "_nvmlDeviceGetComputeRunningProcesses_v3")
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    assert backend.processes(0) == [200, 300]
    fake.fail["nvmlDeviceGetComputeRunningProcesses_v2"] = pynvml.NVML_ERROR_NO_PERMISSION
    with pytest.raises(DeviceError) as exc:
        backend.processes(0)
    assert exc.value.code is NvmlCode.NO_PERMISSION


def test_library_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str) -> Any:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(pynvml, "nvmlLib", None)
    monkeypatch.setattr(pynvml, "CDLL", no_library)
    backend = NvmlBackend()  # constructing needs no library
    with pytest.raises(DeviceError) as exc:
        backend.gpus()
    assert exc.value.code is NvmlCode.LIBRARY_NOT_FOUND
    assert NO_LIBRARY_MESSAGE in str(exc.value) and "no NVIDIA driver" in str(exc.value)


def test_driver_not_loaded(fake: FakeNvmlLib) -> None:
    fake.fail["nvmlInitWithFlags"] = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    with pytest.raises(DeviceError) as exc:
        NvmlBackend().mig_mode(0)
    assert exc.value.code is NvmlCode.DRIVER_NOT_LOADED and "kernel driver" in str(exc.value)


class FakeSmi:
    def __init__(self, rc: int = 0, out: str = "", exc: Exception | None = None) -> None:
        self.rc, self.out, self.exc = rc, out, exc
        self.argv: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        self.argv.append(argv)
        if self.exc is not None:
            raise self.exc
        return subprocess.CompletedProcess(argv, self.rc, self.out, "")


def test_reset_runs_nvidia_smi_with_bus_ids(fake: FakeNvmlLib) -> None:
    smi = FakeSmi(out="GPU 00000000:1B:00.0 was successfully reset.")
    NvmlBackend(run=smi).reset([1, 0, 1])
    assert smi.argv == [["nvidia-smi", "-r", "-i", "00000000:3B:00.0,00000000:1B:00.0"]]
    NvmlBackend(run=smi).reset([])
    assert len(smi.argv) == 1


@pytest.mark.parametrize(
    ("output", "code"),
    [
        (
            "GPU 00000000:1B:00.0 is currently in use by another process. 1 device is currently being used by one or "
            "more other processes. Please first kill all processes using this device",
            NvmlCode.IN_USE,
        ),
        ("Resetting GPU 00000000:1B:00.0 is not supported.", NvmlCode.RESET_REQUIRED),
        ("GPU Reset couldn't run because GPU 00000000:1B:00.0 is the primary GPU.", NvmlCode.RESET_REQUIRED),
        ("Unable to reset GPU 00000000:1B:00.0: Insufficient Permissions", NvmlCode.NO_PERMISSION),
        ("something else", NvmlCode.UNKNOWN),
    ],
)
def test_reset_failures(fake: FakeNvmlLib, output: str, code: NvmlCode) -> None:
    with pytest.raises(ResetError) as exc:
        NvmlBackend(run=FakeSmi(rc=255, out=output)).reset([0])
    assert (exc.value.code, exc.value.gpu, exc.value.op) == (code, 0, "reset")
    assert reset_failure_code(output) is code


def test_reset_without_nvidia_smi_or_in_time(fake: FakeNvmlLib) -> None:
    with pytest.raises(ResetError, match="not found"):
        NvmlBackend(run=FakeSmi(exc=FileNotFoundError("nvidia-smi"))).reset([0, 1])
    with pytest.raises(ResetError) as exc:
        NvmlBackend(run=FakeSmi(exc=subprocess.TimeoutExpired("nvidia-smi", 1))).reset([0])
    assert exc.value.code is NvmlCode.TIMEOUT
