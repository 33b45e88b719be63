"""GPU device backends behind one protocol: NVML for real hardware, a stateful simulation for everything else."""

from .base import (
    MUTATING_OPS,
    READ_ONLY_OPS,
    ComputeInstance,
    DeviceError,
    GpuBackend,
    GpuInfo,
    GpuInstance,
    MigMode,
    MigModeState,
    NvmlCode,
    ResetError,
)

__all__ = [
    "MUTATING_OPS",
    "READ_ONLY_OPS",
    "ComputeInstance",
    "DeviceError",
    "GpuBackend",
    "GpuInfo",
    "GpuInstance",
    "MigMode",
    "MigModeState",
    "NvmlCode",
    "ResetError",
]
