"""The `GpuBackend` protocol: the small set of GPU operations mig-parted needs, over NVML or a simulation.

Everything above this layer (parted, the agent) talks to GPUs only through this protocol, so every behaviour can be
tested on the simulated backend and the NVML backend stays a thin adapter.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..catalog import Placement, ProfileTable
from ..errors import MigManagerError
from ..spec import PciId


class MigMode(enum.IntEnum):
    """NVML_DEVICE_MIG_DISABLE / NVML_DEVICE_MIG_ENABLE."""

    DISABLED = 0
    ENABLED = 1


class NvmlCode(enum.Enum):
    """The NVML return codes this project distinguishes (names as in nvml.h without the NVML_ERROR_ prefix)."""

    SUCCESS = "SUCCESS"
    UNINITIALIZED = "UNINITIALIZED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    NO_PERMISSION = "NO_PERMISSION"
    NOT_FOUND = "NOT_FOUND"
    INSUFFICIENT_RESOURCES = "INSUFFICIENT_RESOURCES"
    IN_USE = "IN_USE"
    RESET_REQUIRED = "RESET_REQUIRED"
    GPU_IS_LOST = "GPU_IS_LOST"
    LIBRARY_NOT_FOUND = "LIBRARY_NOT_FOUND"
    DRIVER_NOT_LOADED = "DRIVER_NOT_LOADED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN = "UNKNOWN"


class DeviceError(MigManagerError):
    """A GPU operation failed; `op` names the operation, `code` the NVML error, `gpu` the GPU index if any."""

    def __init__(self, op: str, code: NvmlCode, message: str, gpu: int | None = None) -> None:
        where = f"GPU {gpu}: " if gpu is not None else ""
        super().__init__(f"{where}{op} failed ({code.value}): {message}")
        self.op = op
        self.code = code
        self.gpu = gpu


class ResetError(DeviceError):
    """A GPU reset failed: `code` is IN_USE (processes hold the GPU) or RESET_REQUIRED meaning a reboot is needed."""


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    pci_bus_id: str  # "00000000:3B:00.0"
    pci: PciId  # device, vendor and subsystem ids
    product_name: str
    memory_mib: int
    mig_capable: bool


@dataclass(frozen=True)
class MigModeState:
    current: MigMode
    pending: MigMode

    @property
    def change_pending(self) -> bool:
        return self.current != self.pending


@dataclass(frozen=True)
class ComputeInstance:
    id: int
    profile_id: int  # the CI profile ID (as create calls take it)
    placement: Placement  # compute slices within the GPU instance
    engine_profile_id: int = 0


@dataclass(frozen=True)
class GpuInstance:
    id: int
    profile_id: int  # the GI profile ID (as create calls take it, e.g. 19 for H100 1g.10gb)
    placement: Placement  # memory slices
    compute_instances: tuple[ComputeInstance, ...] = ()


# The GpuBackend methods that only read, and those that change a GPU (what a read-only tool must never call).
READ_ONLY_OPS: tuple[str, ...] = ("gpus", "mig_mode", "profile_table", "gpu_instances", "processes")
MUTATING_OPS: tuple[str, ...] = (
    "set_mig_mode",
    "reset",
    "create_gpu_instance",
    "destroy_gpu_instance",
    "create_compute_instance",
    "destroy_compute_instance",
)


@runtime_checkable
class GpuBackend(Protocol):
    """GPU operations; every failure raises DeviceError (or ResetError) with the NVML code."""

    def gpus(self) -> list[GpuInfo]:
        """Every NVIDIA GPU, indexed as NVML indexes them (sorted by PCI bus id)."""
        ...

    def mig_mode(self, index: int) -> MigModeState: ...

    def set_mig_mode(self, index: int, mode: MigMode) -> NvmlCode:
        """Request a mode; returns the activation status (SUCCESS, or RESET_REQUIRED / IN_USE while pending)."""
        ...

    def reset(self, indices: Sequence[int]) -> None:
        """Reset GPUs so that pending mode changes take effect; raises ResetError (IN_USE or RESET_REQUIRED)."""
        ...

    def profile_table(self, index: int) -> ProfileTable:
        """The GPU- and compute-instance profiles the device itself reports (the device wins over the catalog)."""
        ...

    def gpu_instances(self, index: int) -> list[GpuInstance]:
        """Existing GPU instances with their compute instances, ordered by placement."""
        ...

    def create_gpu_instance(self, index: int, profile_id: int, placement: Placement) -> GpuInstance: ...

    def destroy_gpu_instance(self, index: int, gpu_instance_id: int) -> None: ...

    def create_compute_instance(
        self, index: int, gpu_instance_id: int, profile_id: int, placement: Placement
    ) -> ComputeInstance: ...

    def destroy_compute_instance(self, index: int, gpu_instance_id: int, compute_instance_id: int) -> None: ...

    def processes(self, index: int) -> list[int]:
        """PIDs of processes using the GPU."""
        ...
