"""NVIDIA's GPU feature discovery and device plugin, emulated over a simulated GPU host's state. Pure.

`gfd_labels(state, strategy)` gives the node labels GFD publishes (mig-facts section 5, NVIDIA/k8s-device-plugin
`internal/lm`), `device_plugin_resources(state, strategy)` the extended resources the device plugin advertises, or
the error with which the real plugin refuses to start. `state` is the device layer's state document
(`mig_manager.devices.simulated.read_state`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mig_manager.catalog import CI_PROFILE_CONSTANTS, GpuInstanceProfile, default_catalog

STRATEGIES = ("none", "single", "mixed")
GPU = "nvidia.com/gpu"

_CI_SLICES = {v: k for k, v in CI_PROFILE_CONSTANTS.items()}
_UNSAFE = re.compile(r"[^A-Za-z0-9\-_. ]")


class InvalidMigConfig(Exception):
    """The device plugin refuses to start with this MIG geometry and strategy (the message is its log line)."""


@dataclass(frozen=True)
class HostInfo:
    """What GFD reads besides the GPUs: driver and CUDA versions, the machine type."""

    driver_version: str = "580.95.05"
    cuda_version: str = "13.0"
    machine: str = "kubesim"


@dataclass(frozen=True)
class MigDevice:
    gpu: int
    name: str  # the MIG profile name, `1g.10gb` or `1c.3g.40gb`
    parent_product: str
    attributes: Mapping[str, int]
    compute_instance: bool


def sanitise(text: str) -> str:
    """GFD's product-name rule: drop characters outside [A-Za-z0-9-_. ], runs of blanks become one `-`."""
    return "-".join(_UNSAFE.sub("", text).split())


def family(compute_capability: str) -> str:
    major_text, _, minor_text = compute_capability.partition(".")
    major, minor = int(major_text or 0), int(minor_text or 0)
    names = {1: "tesla", 2: "fermi", 3: "kepler", 5: "maxwell", 6: "pascal", 9: "hopper", 10: "blackwell"}
    if major == 7:
        return "volta" if minor < 5 else "turing"
    if major == 8:
        return "ampere" if minor < 9 else "ada-lovelace"
    if major == 12:
        return "blackwell"
    return names.get(major, "undefined")


def mig_enabled(gpu: Mapping[str, Any]) -> bool:
    return bool(gpu.get("mig_capable")) and (gpu.get("mig_mode") or {}).get("current") == "enabled"


def _gi_profile(gpu: Mapping[str, Any], profile_id: int) -> GpuInstanceProfile | None:
    key = gpu.get("model")
    if not key:
        return None
    model = next((m for m in default_catalog().models if m.key == key), None)
    if model is None:
        return None
    return next((p for p in model.table.gpu_instance_profiles if p.id == profile_id), None)


def mig_devices(state: Mapping[str, Any]) -> list[MigDevice]:
    """Every MIG device (compute instance) on the host, in GPU and instance order."""
    result: list[MigDevice] = []
    for gpu in state.get("gpus") or []:
        if not mig_enabled(gpu):
            continue
        for gi in gpu.get("gpu_instances") or []:
            profile = _gi_profile(gpu, int(gi.get("profile_id", -1)))
            if profile is None:
                continue
            for ci in gi.get("compute_instances") or []:
                ci_slices = _CI_SLICES.get(int(ci.get("profile_id", 0)), profile.slices)
                if ci_slices >= profile.slices:
                    name, sms, is_ci = str(profile.name), profile.multiprocessors, False
                else:
                    name = f"{ci_slices}c.{profile.name}"
                    sms, is_ci = profile.multiprocessors * ci_slices // profile.slices, True
                attributes = {
                    "memory": profile.memory_mib,
                    "multiprocessors": sms,
                    "slices.gi": profile.slices,
                    "slices.ci": ci_slices,
                    "engines.copy": profile.engines.copy,
                    "engines.decoder": profile.engines.decoder,
                    "engines.encoder": profile.engines.encoder,
                    "engines.jpeg": profile.engines.jpeg,
                    "engines.ofa": profile.engines.ofa,
                }
                result.append(
                    MigDevice(int(gpu.get("index", 0)), name, str(gpu.get("product_name")), attributes, is_ci)
                )
    return result


def _has_mig_device(gpu: Mapping[str, Any]) -> bool:
    return any(gi.get("compute_instances") for gi in gpu.get("gpu_instances") or [])


def _full_gpu_labels(gpus: list[Mapping[str, Any]], sharing: bool) -> dict[str, str]:
    """One labeler per model (count = physical GPUs of that model); with several models the lowest-indexed GPU's
    model wins (NVIDIA: Go map order)."""
    labels: dict[str, str] = {}
    counts: dict[str, int] = {}
    first: dict[str, Mapping[str, Any]] = {}
    for gpu in gpus:
        name = str(gpu.get("product_name"))
        counts[name] = counts.get(name, 0) + 1
        first.setdefault(name, gpu)
    for name in reversed(list(first)):
        gpu = first[name]
        major, _, minor = str(gpu.get("compute_capability", "0.0")).partition(".")
        labels.update(
            {
                f"{GPU}.product": sanitise(name),
                f"{GPU}.count": str(counts[name]),
                f"{GPU}.replicas": "1" if sharing else "0",
                f"{GPU}.sharing-strategy": "none",
                f"{GPU}.memory": str(gpu.get("memory_mib", 0)),
                f"{GPU}.family": family(str(gpu.get("compute_capability", "0.0"))),
                f"{GPU}.compute.major": major or "0",
                f"{GPU}.compute.minor": minor or "0",
            }
        )
    return labels


def _resource_labels(resource: str, product: str, count: int, attributes: Mapping[str, int]) -> dict[str, str]:
    labels = {
        f"{resource}.product": product,
        f"{resource}.count": str(count),
        f"{resource}.replicas": "1",
        f"{resource}.sharing-strategy": "none",
    }
    labels.update({f"{resource}.{k}": str(v) for k, v in attributes.items()})
    return labels


def single_strategy_problem(state: Mapping[str, Any]) -> str:
    """Why `single` is invalid on this host ("" when it is valid or no GPU has MIG enabled)."""
    gpus = list(state.get("gpus") or [])
    enabled = [g for g in gpus if mig_enabled(g)]
    if not enabled:
        return ""
    if any(not _has_mig_device(g) for g in enabled):
        return "at least one MIG device is enabled but empty"
    if len(enabled) != len(gpus):
        return "devices with MIG enabled and disable detected"
    if len({d.name for d in mig_devices(state)}) != 1:
        return "more than one MIG device type present on node"
    return ""


def gfd_labels(state: Mapping[str, Any], strategy: str, info: HostInfo | None = None, now: int = 0) -> dict[str, str]:
    """The `nvidia.com/*` labels GFD publishes for this host and MIG strategy (none without GPUs)."""
    info = info or HostInfo()
    gpus = list(state.get("gpus") or [])
    if not gpus:
        return {}
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown MIG strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    driver = info.driver_version.split(".")
    while len(driver) < 3:
        driver.append("")
    cuda_major, _, cuda_minor = info.cuda_version.partition(".")
    labels: dict[str, str] = {
        "nvidia.com/gfd.timestamp": str(now),
        "nvidia.com/cuda.driver.major": driver[0],
        "nvidia.com/cuda.driver.minor": driver[1],
        "nvidia.com/cuda.driver.rev": driver[2],
        "nvidia.com/cuda.driver-version.major": driver[0],
        "nvidia.com/cuda.driver-version.minor": driver[1],
        "nvidia.com/cuda.driver-version.revision": driver[2],
        "nvidia.com/cuda.driver-version.full": info.driver_version,
        "nvidia.com/cuda.runtime.major": cuda_major,
        "nvidia.com/cuda.runtime.minor": cuda_minor or "0",
        "nvidia.com/cuda.runtime-version.major": cuda_major,
        "nvidia.com/cuda.runtime-version.minor": cuda_minor or "0",
        "nvidia.com/cuda.runtime-version.full": info.cuda_version,
        "nvidia.com/gpu.machine": sanitise(info.machine),
        "nvidia.com/gpu.mode": "compute",
        "nvidia.com/mps.capable": "false",
        "nvidia.com/mig.capable": "true" if any(g.get("mig_capable") for g in gpus) else "false",
    }
    enabled = [g for g in gpus if mig_enabled(g)]
    labels.update(_full_gpu_labels(enabled, sharing=False))
    labels.update(_full_gpu_labels([g for g in gpus if not mig_enabled(g)], sharing=True))
    if strategy == "none":
        return labels
    labels["nvidia.com/mig.strategy"] = strategy
    devices = mig_devices(state)
    if strategy == "single":
        if not enabled:
            return labels
        if single_strategy_problem(state):
            labels.update(
                {
                    f"{GPU}.product": f"{sanitise(str(enabled[0].get('product_name')))}-MIG-INVALID",
                    f"{GPU}.count": "0",
                    f"{GPU}.replicas": "0",
                    f"{GPU}.sharing-strategy": "",
                    f"{GPU}.memory": "0",
                }
            )
            return labels
        device = devices[0]
        labels.update(
            _resource_labels(
                GPU, f"{sanitise(device.parent_product)}-MIG-{sanitise(device.name)}", len(devices), device.attributes
            )
        )
        return labels
    by_name: dict[str, list[MigDevice]] = {}
    for device in devices:
        by_name.setdefault(device.name, []).append(device)
    for name, group in by_name.items():
        resource = mig_resource_name(name)
        product = f"{sanitise(group[0].parent_product)}-MIG-{sanitise(name)}"
        labels.update(_resource_labels(resource, product, len(group), group[0].attributes))
    return labels


def mig_resource_name(profile: str) -> str:
    """`nvidia.com/mig-<profile>` with `+` replaced by `.` (`1g.10gb+me` -> `nvidia.com/mig-1g.10gb.me`)."""
    return "nvidia.com/mig-" + profile.replace("+", ".")


def device_plugin_resources(state: Mapping[str, Any], strategy: str) -> dict[str, int]:
    """Extended resources the device plugin advertises; raises InvalidMigConfig where the real one refuses to start."""
    gpus = list(state.get("gpus") or [])
    if strategy not in STRATEGIES:
        raise InvalidMigConfig(f"unknown MIG strategy: {strategy}")
    if not gpus:
        return {}
    if strategy == "none":
        return {GPU: len(gpus)}
    devices = mig_devices(state)
    if strategy == "single":
        problem = single_strategy_problem(state)
        if problem == "at least one MIG device is enabled but empty":
            raise InvalidMigConfig("invalid MIG configuration: at least one MIG-enabled device has no MIG devices")
        if problem == "devices with MIG enabled and disable detected":
            raise InvalidMigConfig(
                "invalid MIG configuration: all devices on the node must be configured with the same migEnabled value"
            )
        if problem:
            raise InvalidMigConfig("invalid MIG configuration: more than one MIG device type present on node")
        if not any(mig_enabled(g) for g in gpus):
            return {GPU: len(gpus)}
        return {GPU: len(devices)}
    resources: dict[str, int] = {}
    full = sum(1 for g in gpus if not mig_enabled(g))
    if full:
        resources[GPU] = full
    for device in devices:
        if device.compute_instance:
            raise InvalidMigConfig(
                f"error building device map: device {device.gpu} MIG device {device.name} does not match any resource "
                "patterns"
            )
        name = mig_resource_name(device.name)
        resources[name] = resources.get(name, 0) + 1
    return resources
