"""Node labelling (gpu-operator-facts 4.7), a pure function of node facts and the policy."""

from __future__ import annotations

import json

import pytest

from gpu_operator.inventory import INVENTORY_ANNOTATION
from gpu_operator.nodes import (
    CONTAINER_DEPLOY_LABELS,
    DEPLOY_MIG_MANAGER,
    GPU_PRESENT,
    MIG_CONFIG,
    apply_changes,
    label_changes,
    mig_capable,
)
from gpu_operator.policy import ClusterPolicySpec, parse_spec

PCI = {"feature.node.kubernetes.io/pci-10de.present": "true"}
HELM = parse_spec({"migManager": {"config": {"default": "all-disabled"}}})
ALL_TRUE = {key: "true" for key in CONTAINER_DEPLOY_LABELS}


def _inventory(capable: bool) -> dict[str, str]:
    gpu = {"index": 0, "pciId": "0x233010DE", "migCapable": capable}
    return {INVENTORY_ANNOTATION: json.dumps({"version": "v1", "gpus": [gpu]})}


def test_new_mig_capable_gpu_node_gets_everything() -> None:
    labels = {**PCI, "nvidia.com/mig.capable": "true"}
    changes = label_changes(labels, {}, HELM)
    assert changes == {GPU_PRESENT: "true", **ALL_TRUE, DEPLOY_MIG_MANAGER: "true", MIG_CONFIG: "all-disabled"}
    # applying them converges: nothing more to write
    assert label_changes(apply_changes(labels, changes), {}, HELM) == {}


def test_gpu_node_without_mig() -> None:
    changes = label_changes({**PCI, "nvidia.com/mig.capable": "false"}, {}, HELM)
    assert changes == {GPU_PRESENT: "true", **ALL_TRUE}


def test_cpu_node_is_left_alone() -> None:
    assert label_changes({"kubernetes.io/hostname": "cpu-1"}, {}, HELM) == {}


def test_node_that_lost_its_gpus_loses_deploy_labels() -> None:
    labels = {GPU_PRESENT: "true", **ALL_TRUE, DEPLOY_MIG_MANAGER: "true", MIG_CONFIG: "all-1g.10gb"}
    changes = label_changes(labels, {}, HELM)
    assert changes == {GPU_PRESENT: "false", **{k: None for k in ALL_TRUE}, DEPLOY_MIG_MANAGER: None}


def test_operands_kill_switch() -> None:
    labels = {**PCI, GPU_PRESENT: "true", "nvidia.com/gpu.deploy.operands": "false", **ALL_TRUE}
    assert label_changes(labels, {}, HELM) == {k: None for k in ALL_TRUE}


@pytest.mark.parametrize("value", ["paused-for-mig-change", "paused-for-driver-upgrade", "false"])
def test_non_empty_values_are_never_touched(value: str) -> None:
    labels = {
        **PCI,
        GPU_PRESENT: "true",
        "nvidia.com/mig.capable": "true",
        **{k: value for k in ALL_TRUE},
        DEPLOY_MIG_MANAGER: value,
        MIG_CONFIG: "all-balanced",
    }
    assert label_changes(labels, {}, HELM) == {}


def test_empty_value_counts_as_absent() -> None:
    labels = {**PCI, GPU_PRESENT: "true", **ALL_TRUE, "nvidia.com/gpu.deploy.device-plugin": ""}
    assert label_changes(labels, {}, HELM) == {"nvidia.com/gpu.deploy.device-plugin": "true"}


def test_mig_manager_label_is_independent_of_enabled_but_config_is_not() -> None:
    disabled = parse_spec({"migManager": {"enabled": False, "config": {"default": "all-disabled"}}})
    labels = {**PCI, GPU_PRESENT: "true", **ALL_TRUE, "nvidia.com/mig.capable": "true"}
    assert label_changes(labels, {}, disabled) == {DEPLOY_MIG_MANAGER: "true"}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, None),  # no ClusterPolicy yet
        (ClusterPolicySpec(), None),  # no migManager.config: no default (as NVIDIA)
        (parse_spec({"migManager": {"config": {"default": ""}}}), None),
        (HELM, "all-disabled"),
    ],
)
def test_default_mig_config_label(policy: ClusterPolicySpec | None, expected: str | None) -> None:
    labels = {**PCI, GPU_PRESENT: "true", **ALL_TRUE, DEPLOY_MIG_MANAGER: "true", "nvidia.com/mig.capable": "true"}
    assert label_changes(labels, {}, policy).get(MIG_CONFIG) == expected


def test_existing_mig_config_is_never_changed() -> None:
    labels = {**PCI, GPU_PRESENT: "true", **ALL_TRUE, DEPLOY_MIG_MANAGER: "true", MIG_CONFIG: "all-1g.10gb"}
    assert label_changes({**labels, "nvidia.com/mig.capable": "true"}, {}, HELM) == {}


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({"nvidia.com/mig.capable": "true"}, {}, True),
        ({"nvidia.com/mig.capable": "false", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, {}, False),
        ({}, _inventory(True), True),
        ({}, _inventory(False), False),
        ({"nvidia.com/mig.capable": "true"}, _inventory(False), True),  # GFD's label decides first
        ({}, {INVENTORY_ANNOTATION: "{not json"}, False),
        ({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}, {INVENTORY_ANNOTATION: "[]"}, True),
        ({"nvidia.com/gpu.product": "NVIDIA-H200"}, {}, True),
        ({"nvidia.com/gpu.product": "Tesla-T4"}, {}, False),
        ({"nvidia.com/gpu.product": "NVIDIA-A100", "nvidia.com/vgpu.host-driver-version": "535"}, {}, False),
    ],
)
def test_mig_capable(labels: dict[str, str], annotations: dict[str, str], expected: bool) -> None:
    assert mig_capable(labels, annotations) is expected


def test_inventory_makes_a_node_mig_managed() -> None:
    changes = label_changes({**PCI, GPU_PRESENT: "true", **ALL_TRUE}, _inventory(True), HELM)
    assert changes == {DEPLOY_MIG_MANAGER: "true", MIG_CONFIG: "all-disabled"}


def test_unknown_deploy_labels_are_kept() -> None:
    labels = {**PCI, GPU_PRESENT: "true", **ALL_TRUE, "nvidia.com/gpu.deploy.nvsm": "true"}
    assert label_changes(labels, {}, HELM) == {}


def test_apply_changes_deletes_none() -> None:
    assert apply_changes({"a": "1", "b": "2"}, {"a": None, "c": "3"}) == {"b": "2", "c": "3"}
