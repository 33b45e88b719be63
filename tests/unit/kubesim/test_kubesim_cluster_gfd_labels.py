"""GFD labels and device-plugin resources of the emulation, for none, single (valid and each INVALID case) and
mixed, checked key by key against mig-facts section 5."""

from __future__ import annotations

from typing import Any

import pytest

from kubesim.gpus import HostInfo, InvalidMigConfig, device_plugin_resources, gfd_labels, mig_resource_name, sanitise

H100 = {"model": "H100-SXM5-80GB", "product_name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "cc": "9.0"}
A100 = {"model": "A100-SXM4-40GB", "product_name": "NVIDIA A100-SXM4-40GB", "memory_mib": 40960, "cc": "8.0"}
CI = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}  # compute slices -> CI profile id


def gpu(kind: dict[str, Any], index: int, enabled: bool, instances: list[tuple[int, int]] = ()) -> dict[str, Any]:
    """instances: (GI profile id, CI compute slices)."""
    mode = "enabled" if enabled else "disabled"
    return {
        "index": index,
        "product_name": kind["product_name"],
        "memory_mib": kind["memory_mib"],
        "model": kind["model"],
        "compute_capability": kind["cc"],
        "mig_capable": True,
        "mig_mode": {"current": mode, "pending": mode},
        "gpu_instances": [
            {"id": i + 1, "profile_id": gi, "compute_instances": [{"id": 0, "profile_id": CI[ci]}]}
            for i, (gi, ci) in enumerate(instances)
        ],
    }


COMMON = {
    "nvidia.com/gfd.timestamp": "1700000000",
    "nvidia.com/cuda.driver.major": "580",
    "nvidia.com/cuda.driver.minor": "95",
    "nvidia.com/cuda.driver.rev": "05",
    "nvidia.com/cuda.driver-version.major": "580",
    "nvidia.com/cuda.driver-version.minor": "95",
    "nvidia.com/cuda.driver-version.revision": "05",
    "nvidia.com/cuda.driver-version.full": "580.95.05",
    "nvidia.com/cuda.runtime.major": "13",
    "nvidia.com/cuda.runtime.minor": "0",
    "nvidia.com/cuda.runtime-version.major": "13",
    "nvidia.com/cuda.runtime-version.minor": "0",
    "nvidia.com/cuda.runtime-version.full": "13.0",
    "nvidia.com/gpu.machine": "DGXH100",
    "nvidia.com/gpu.mode": "compute",
    "nvidia.com/mps.capable": "false",
    "nvidia.com/mig.capable": "true",
}
H100_FULL = {
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.count": "2",
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
}
INFO = HostInfo("580.95.05", "13.0", "DGXH100")


def labels(gpus: list[dict[str, Any]], strategy: str) -> dict[str, str]:
    return gfd_labels({"gpus": gpus}, strategy, INFO, now=1700000000)


def test_none_strategy_full_gpus() -> None:
    state = [gpu(H100, 0, False), gpu(H100, 1, False)]
    assert labels(state, "none") == {**COMMON, **H100_FULL}
    assert device_plugin_resources({"gpus": state}, "none") == {"nvidia.com/gpu": 2}


def test_none_strategy_with_mig_enabled_advertises_whole_gpus() -> None:
    state = [gpu(H100, 0, True, [(19, 1)] * 7), gpu(H100, 1, True, [(19, 1)] * 7)]
    assert labels(state, "none") == {**COMMON, **H100_FULL, "nvidia.com/gpu.replicas": "0"}
    assert device_plugin_resources({"gpus": state}, "none") == {"nvidia.com/gpu": 2}


def test_single_without_mig_is_none_plus_the_strategy() -> None:
    state = [gpu(H100, 0, False), gpu(H100, 1, False)]
    assert labels(state, "single") == {**COMMON, **H100_FULL, "nvidia.com/mig.strategy": "single"}
    assert device_plugin_resources({"gpus": state}, "single") == {"nvidia.com/gpu": 2}


def test_single_valid() -> None:
    state = [gpu(H100, 0, True, [(19, 1)] * 7), gpu(H100, 1, True, [(19, 1)] * 7)]
    assert labels(state, "single") == {
        **COMMON,
        **H100_FULL,
        "nvidia.com/mig.strategy": "single",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb",
        "nvidia.com/gpu.count": "14",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/gpu.memory": "9984",
        "nvidia.com/gpu.multiprocessors": "16",
        "nvidia.com/gpu.slices.gi": "1",
        "nvidia.com/gpu.slices.ci": "1",
        "nvidia.com/gpu.engines.copy": "1",
        "nvidia.com/gpu.engines.decoder": "1",
        "nvidia.com/gpu.engines.encoder": "0",
        "nvidia.com/gpu.engines.jpeg": "1",
        "nvidia.com/gpu.engines.ofa": "0",
    }
    assert device_plugin_resources({"gpus": state}, "single") == {"nvidia.com/gpu": 14}


INVALID = {
    "nvidia.com/mig.strategy": "single",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-INVALID",
    "nvidia.com/gpu.count": "0",
    "nvidia.com/gpu.replicas": "0",
    "nvidia.com/gpu.sharing-strategy": "",
    "nvidia.com/gpu.memory": "0",
}


@pytest.mark.parametrize(
    ("state", "full", "error"),
    [
        pytest.param(  # a MIG-enabled GPU without MIG devices
            [gpu(H100, 0, True, [(19, 1)]), gpu(H100, 1, True)],
            {**H100_FULL, "nvidia.com/gpu.replicas": "0"},
            "at least one MIG-enabled device has no MIG devices",
            id="enabled-but-empty",
        ),
        pytest.param(  # MIG-enabled and MIG-disabled GPUs mixed
            [gpu(H100, 0, True, [(19, 1)]), gpu(H100, 1, False)],
            {**H100_FULL, "nvidia.com/gpu.count": "1"},
            "same migEnabled value",
            id="enabled-and-disabled",
        ),
        pytest.param(  # more than one MIG profile on the node (all-balanced)
            [gpu(H100, 0, True, [(9, 3), (14, 2), (19, 1)]), gpu(H100, 1, True, [(9, 3), (14, 2), (19, 1)])],
            {**H100_FULL, "nvidia.com/gpu.replicas": "0"},
            "more than one MIG device type",
            id="several-profiles",
        ),
    ],
)
def test_single_invalid(state: list[dict[str, Any]], full: dict[str, str], error: str) -> None:
    got = labels(state, "single")
    if "nvidia.com/gpu.count" in full and full["nvidia.com/gpu.count"] == "1":
        # one MIG-enabled (no sharing) and one full GPU of the same model: the full GPU's labeler wins
        full = {**full, "nvidia.com/gpu.replicas": "1"}
    assert got == {**COMMON, **full, **INVALID}
    with pytest.raises(InvalidMigConfig, match=error):
        device_plugin_resources({"gpus": state}, "single")


def test_mixed_all_balanced() -> None:
    state = [gpu(H100, 0, True, [(9, 3), (14, 2), (19, 1), (19, 1)]), gpu(H100, 1, False)]
    got = labels(state, "mixed")
    expected = {**COMMON, **H100_FULL, "nvidia.com/gpu.count": "1", "nvidia.com/mig.strategy": "mixed"}
    for profile, count, memory, sms, gi, ce, dec, jpeg in (
        ("1g.10gb", 2, 9984, 16, 1, 1, 1, 1),
        ("2g.20gb", 1, 20096, 32, 2, 2, 2, 2),
        ("3g.40gb", 1, 40448, 60, 3, 3, 3, 3),
    ):
        p = f"nvidia.com/mig-{profile}"
        expected.update(
            {
                f"{p}.count": str(count),
                f"{p}.product": f"NVIDIA-H100-80GB-HBM3-MIG-{profile}",
                f"{p}.replicas": "1",
                f"{p}.sharing-strategy": "none",
                f"{p}.memory": str(memory),
                f"{p}.multiprocessors": str(sms),
                f"{p}.slices.gi": str(gi),
                f"{p}.slices.ci": str(gi),
                f"{p}.engines.copy": str(ce),
                f"{p}.engines.decoder": str(dec),
                f"{p}.engines.encoder": "0",
                f"{p}.engines.jpeg": str(jpeg),
                f"{p}.engines.ofa": "0",
            }
        )
    assert got == expected
    assert device_plugin_resources({"gpus": state}, "mixed") == {
        "nvidia.com/gpu": 1,
        "nvidia.com/mig-1g.10gb": 2,
        "nvidia.com/mig-2g.20gb": 1,
        "nvidia.com/mig-3g.40gb": 1,
    }


def test_mixed_ignores_empty_mig_gpus_and_rejects_compute_instance_profiles() -> None:
    empty = [gpu(A100, 0, True), gpu(A100, 1, True, [(19, 1)])]
    got = labels(empty, "mixed")
    assert got["nvidia.com/mig-1g.5gb.count"] == "1"
    assert got["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
    assert got["nvidia.com/gpu.family"] == "ampere"
    assert device_plugin_resources({"gpus": empty}, "mixed") == {"nvidia.com/mig-1g.5gb": 1}
    ci = [gpu(H100, 0, True, [(9, 1)])]
    assert labels(ci, "mixed")["nvidia.com/mig-1c.3g.40gb.count"] == "1"
    with pytest.raises(InvalidMigConfig, match="does not match any resource patterns"):
        device_plugin_resources({"gpus": ci}, "mixed")


def test_no_gpus_no_labels_and_helpers() -> None:
    assert gfd_labels({"gpus": []}, "single") == {}
    assert device_plugin_resources({"gpus": []}, "mixed") == {}
    assert mig_resource_name("1g.10gb+me") == "nvidia.com/mig-1g.10gb.me"
    assert sanitise("NVIDIA  A100 80GB (PCIe)") == "NVIDIA-A100-80GB-PCIe"
    with pytest.raises(ValueError, match="unknown MIG strategy"):
        gfd_labels({"gpus": [gpu(H100, 0, False)]}, "triple")
