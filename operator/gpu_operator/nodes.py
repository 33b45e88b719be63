"""Desired node labels from node facts and the policy (gpu-operator-facts 4.7, container workloads). Pure.

`label_changes` returns the label writes for one node as a merge patch body (`None` deletes a key); an empty result
means the node is already right, so the operator writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpu_operator.errors import InventoryError
from gpu_operator.inventory import INVENTORY_ANNOTATION, parse_inventory
from gpu_operator.policy import ClusterPolicySpec

GPU_PRESENT = "nvidia.com/gpu.present"
DEPLOY_PREFIX = "nvidia.com/gpu.deploy."
DEPLOY_OPERANDS = "nvidia.com/gpu.deploy.operands"
DEPLOY_MIG_MANAGER = "nvidia.com/gpu.deploy.mig-manager"
MIG_CAPABLE = "nvidia.com/mig.capable"
MIG_CONFIG = "nvidia.com/mig.config"
MIG_CONFIG_STATE = "nvidia.com/mig.config.state"
GPU_PRODUCT = "nvidia.com/gpu.product"
VGPU_HOST_DRIVER = "nvidia.com/vgpu.host-driver-version"

PCI_LABELS = (
    "feature.node.kubernetes.io/pci-10de.present",
    "feature.node.kubernetes.io/pci-0302_10de.present",
    "feature.node.kubernetes.io/pci-0300_10de.present",
)

# NVIDIA's deploy labels for container workloads (v26.3 set); each operand DaemonSet selects on its own.
CONTAINER_DEPLOY_LABELS = tuple(
    DEPLOY_PREFIX + c
    for c in (
        "driver",
        "gpu-feature-discovery",
        "container-toolkit",
        "device-plugin",
        "dcgm",
        "dcgm-exporter",
        "node-status-exporter",
        "operator-validator",
    )
)

# Product-name fragments of MIG-capable GPUs (GFD's sanitised `nvidia.com/gpu.product`), used when GFD has not yet
# written `nvidia.com/mig.capable` and the agent has not published its inventory.
MIG_PRODUCT_FRAGMENTS = ("a100", "a30", "a800", "h100", "h800", "h200", "h20", "gh200", "b200", "b300", "rtx-pro-6000")


def has_gpu(labels: Mapping[str, str]) -> bool:
    return any(labels.get(key) == "true" for key in PCI_LABELS)


def mig_capable(labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
    """NVIDIA's `hasMIGCapableGPU`, with the agent's inventory between GFD's label and the product-name guess."""
    if labels.get(VGPU_HOST_DRIVER):
        return False
    if MIG_CAPABLE in labels:
        return labels[MIG_CAPABLE] == "true"
    text = annotations.get(INVENTORY_ANNOTATION)
    if text:
        try:
            return parse_inventory(text).mig_capable()
        except InventoryError:
            pass  # a malformed inventory is reported by validation; fall back to the product name
    product = labels.get(GPU_PRODUCT, "").lower()
    return any(fragment in product for fragment in MIG_PRODUCT_FRAGMENTS)


def _remove_deploy_labels(labels: Mapping[str, str], changes: dict[str, str | None]) -> None:
    for key in labels:
        if key.startswith(DEPLOY_PREFIX) and key != DEPLOY_OPERANDS:
            changes[key] = None


def label_changes(
    labels: Mapping[str, str], annotations: Mapping[str, str], policy: ClusterPolicySpec | None
) -> dict[str, str | None]:
    """The label writes that bring one node to the desired state; `{}` when it already is.

    - `nvidia.com/gpu.present` follows NFD's NVIDIA PCI labels; a node without GPUs loses every deploy label.
    - `nvidia.com/gpu.deploy.operands=false` removes every deploy label (the user's kill switch).
    - Each container deploy label is set to `true` unless it already has a non-empty value: `false` (opt-out) and
      `paused-for-*` (the MIG manager or driver manager at work) are never touched.
    - `nvidia.com/gpu.deploy.mig-manager=true` on MIG-capable nodes when the key is absent.
    - `nvidia.com/mig.config=<migManager.config.default>` on MIG-capable nodes without one, when the MIG manager is
      enabled and the default is not empty. The operator never changes the value afterwards.
    """
    changes: dict[str, str | None] = {}
    present = labels.get(GPU_PRESENT)
    if has_gpu(labels):
        if present != "true":
            changes[GPU_PRESENT] = "true"
            present = "true"
    elif present == "true":
        changes[GPU_PRESENT] = "false"
        present = "false"
    if present != "true":
        _remove_deploy_labels(labels, changes)
        return changes
    if labels.get(DEPLOY_OPERANDS) == "false":
        _remove_deploy_labels(labels, changes)
        return changes
    for key in CONTAINER_DEPLOY_LABELS:
        if not labels.get(key):
            changes[key] = "true"
    capable = mig_capable(labels, annotations)
    if capable and DEPLOY_MIG_MANAGER not in labels:
        changes[DEPLOY_MIG_MANAGER] = "true"
    if policy is not None and capable and policy.mig_manager.is_enabled() and not labels.get(MIG_CONFIG):
        default = policy.mig_manager.default_config_label()
        if default:
            changes[MIG_CONFIG] = default
    return changes


def apply_changes(labels: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """The labels after a merge patch of `changes` (for tests and for the operator's own view of a node)."""
    out = dict(labels)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
