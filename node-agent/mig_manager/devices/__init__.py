"""GPU device backends behind one protocol: NVML for real hardware, a stateful simulation for everything else."""

from .base import (
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
