"""The node as mig-parted sees it through a GpuBackend: its GPUs with the device's profile tables, and the names of
existing instances.

Every backend call goes through `call`, which turns a DeviceError into a StepError naming the step ("creating 3g.40gb
at 4:4"), so a failure message always says what was being done to which GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..catalog import CI_PROFILE_CONSTANTS, GpuInstanceProfile, Placement, ProfileTable, default_catalog
from ..devices.base import DeviceError, GpuBackend, GpuInfo, GpuInstance, NvmlCode
from ..devices.profiles import compare_with_catalog
from ..errors import MigManagerError
from ..planner import NodeGpu
from ..spec import ProfileName

log = logging.getLogger("mig_manager.parted")

T = TypeVar("T")

_CI_SLICES_BY_ID = {v: k for k, v in CI_PROFILE_CONSTANTS.items()}


class PartedError(MigManagerError):
    """An apply, assert, export, checkpoint or restore could not be carried out."""


class StepError(PartedError):
    """A backend call failed; `step` says what was being done, `code` the NVML error."""

    def __init__(self, gpu: str | None, step: str, code: NvmlCode, detail: str = "") -> None:
        where = f"{gpu}: " if gpu else ""
        super().__init__(f"{where}{step} failed ({code.value}){': ' + detail if detail else ''}")
        self.gpu = gpu
        self.step = step
        self.code = code


def call(gpu: str | None, step: str, fn: Callable[..., T], *args: Any) -> T:
    """Run one backend call; a DeviceError becomes a StepError naming the GPU and the step."""
    try:
        return fn(*args)
    except DeviceError as exc:
        raise StepError(gpu, step, exc.code) from exc


@dataclass(frozen=True)
class Gpu:
    """One GPU of the node: what the backend reports, and the planner's view (table None when not MIG-capable)."""

    info: GpuInfo
    node: NodeGpu

    @property
    def index(self) -> int:
        return self.info.index

    @property
    def table(self) -> ProfileTable | None:
        return self.node.table

    def describe(self) -> str:
        """`GPU 3 (H100-SXM5-80GB)`: the index and the model (the product name for a GPU without MIG)."""
        return self.node.describe()


def _compare_with_catalog(info: GpuInfo, table: ProfileTable) -> None:
    """Log how the device's profile table differs from the catalog's entry for its PCI id (never fatal)."""
    model = default_catalog().by_pci_id(info.pci)
    if model is None:
        log.info(
            "GPU %d (%s, %s): not in the catalog; using the device's profiles", info.index, info.product_name, info.pci
        )
        return
    try:
        differences = compare_with_catalog(table, model)
    except MigManagerError as exc:  # a diagnostic must never stop an apply
        log.debug("GPU %d: comparing the device's profiles with the catalog failed: %s", info.index, exc)
        return
    for difference in differences:
        log.info("GPU %d (%s): device profile table differs from the catalog: %s", info.index, model.key, difference)


def discover(backend: GpuBackend) -> list[Gpu]:
    """The node's GPUs, each MIG-capable one with the profile table the device reports (the device wins)."""
    infos = call(None, "listing the GPUs", backend.gpus)
    gpus: list[Gpu] = []
    for info in sorted(infos, key=lambda i: i.index):
        table: ProfileTable | None = None
        if info.mig_capable:
            table = call(
                f"GPU {info.index} ({info.product_name})",
                "reading the profile table",
                backend.profile_table,
                info.index,
            )
            _compare_with_catalog(info, table)
        gpus.append(Gpu(info, NodeGpu(info.index, info.pci, table, info.product_name)))
    return gpus


# ---------------------------------------------------------------------------------------------------------------------
# Names of existing instances


def gi_profile_by_id(table: ProfileTable, profile_id: int) -> GpuInstanceProfile | None:
    for profile in table.gpu_instance_profiles:
        if profile.id == profile_id:
            return profile
    return None


def ci_name(table: ProfileTable | None, gi_profile_id: int, ci_profile_id: int) -> str:
    """The canonical name of a compute instance (`3g.40gb`, `1c.3g.40gb`), or a description of an unknown profile."""
    gi = gi_profile_by_id(table, gi_profile_id) if table is not None else None
    slices = _CI_SLICES_BY_ID.get(ci_profile_id)
    if gi is None or slices is None:
        return f"<compute-instance profile {ci_profile_id} in GPU-instance profile {gi_profile_id}>"
    name = gi.name
    return str(ProfileName(slices, name.gpu, name.memory_gb, name.attributes, name.negative))


def gi_name(table: ProfileTable | None, profile_id: int) -> str:
    gi = gi_profile_by_id(table, profile_id) if table is not None else None
    return str(gi.name) if gi is not None else f"<GPU-instance profile {profile_id}>"


def current_devices(table: ProfileTable | None, instances: Iterable[GpuInstance]) -> dict[str, int]:
    """Canonical name -> number of compute instances, as NVIDIA's GetMigConfig counts them (assert compares this)."""
    counts: dict[str, int] = {}
    for gi in instances:
        for ci in gi.compute_instances:
            name = ci_name(table, gi.profile_id, ci.profile_id)
            counts[name] = counts.get(name, 0) + 1
    return counts


def _name_key(name: str) -> tuple[int, int, int, str]:
    try:
        from ..spec import parse_profile_name

        p = parse_profile_name(name)
    except MigManagerError:
        return (0, 0, 0, name)
    return (-p.gpu, -p.compute, -p.memory_gb, name)


def ordered_devices(devices: Mapping[str, int]) -> dict[str, int]:
    """The same counts, largest profiles first (a stable order for output)."""
    return {k: devices[k] for k in sorted(devices, key=_name_key)}


def format_devices(devices: Mapping[str, int]) -> str:
    """`{3g.40gb: 1, 2g.20gb: 1, 1g.10gb: 2}`, largest profiles first; `{}` for no instances."""
    if not devices:
        return "{}"
    return "{" + ", ".join(f"{k}: {devices[k]}" for k in sorted(devices, key=_name_key)) + "}"


def describe_instances(table: ProfileTable | None, instances: Sequence[GpuInstance]) -> str:
    """`3g.40gb@4:4[3g.40gb@0:3], 1g.10gb@0:1[...]`: every GPU instance with its placement and compute instances."""
    if not instances:
        return "no instances"
    parts = []
    for gi in instances:
        cis = ", ".join(f"{ci_name(table, gi.profile_id, ci.profile_id)}@{ci.placement}" for ci in gi.compute_instances)
        parts.append(f"{gi_name(table, gi.profile_id)}@{gi.placement}[{cis}]")
    return ", ".join(parts)


def placement_text(placement: Placement) -> str:
    return f"{placement.start}:{placement.size}"
