"""Node labels and annotations the agent reads and writes, and NVIDIA's gate pause/restore values. Pure.

Labels follow NVIDIA's MIG manager (mig-facts 3.3): `nvidia.com/mig.config` is the input, `nvidia.com/mig.config.state`
the output, and the component gates `nvidia.com/gpu.deploy.*` are paused with `paused-for-mig-change` (a `false` gate
stays `false`) and restored to `true` (a saved `false` stays `false`). The annotations are this project's additions.
"""

from __future__ import annotations

from collections.abc import Mapping

CONFIG_LABEL = "nvidia.com/mig.config"
STATE_LABEL = "nvidia.com/mig.config.state"

# Annotations written by the agent on its Node.
REASON_ANNOTATION = "nvidia.com/mig.config.state.reason"  # human-readable reason of the current state
JOURNAL_ANNOTATION = "nvidia.com/mig.config.journal"  # the reconfiguration in progress (JSON, see journal.py)
INVENTORY_ANNOTATION = "nvidia.com/mig.inventory"  # the GPU inventory read by the operator (JSON, see inventory.py)
# The MIG geometry from before a failed run that could not be put back (mig-parted checkpoint JSON): the next run
# starts from it, so its rollback returns there and not to the half-restored geometry.
RESTORE_ANNOTATION = "nvidia.com/mig.config.restore"

STATE_PENDING = "pending"
STATE_REBOOTING = "rebooting"
STATE_SUCCESS = "success"
STATE_FAILED = "failed"
STATES = (STATE_PENDING, STATE_REBOOTING, STATE_SUCCESS, STATE_FAILED)

PAUSED = "paused-for-mig-change"

GATE_LABELS = (
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm",
    "nvidia.com/gpu.deploy.nvsm",
)
CLIENT_GATE = "nvidia.com/gpu.deploy.client"  # only touched when present and non-empty

# Pods (label `app`) of the operator's components in DEFAULT_GPU_CLIENTS_NAMESPACE that must be gone before the GPUs
# change, validator pods deleted before, and the validator deleted after a change (forces re-validation).
COMPONENT_APPS = (
    "nvidia-device-plugin-daemonset",
    "gpu-feature-discovery",
    "nvidia-dcgm-exporter",
    "nvidia-dcgm",
)
VALIDATOR_APPS = ("nvidia-cuda-validator", "nvidia-device-plugin-validator")
OPERATOR_VALIDATOR_APP = "nvidia-operator-validator"


def paused_value(value: str | None) -> str:
    """NVIDIA's pause value: `false` stays `false`, anything else (missing included) is paused."""
    return "false" if value == "false" else PAUSED


def restored_value(value: str | None) -> str:
    """NVIDIA's restore value from the saved one: `false` stays `false`, anything else becomes `true`."""
    return "false" if value == "false" else "true"


def gates_of(labels: Mapping[str, str]) -> dict[str, str | None]:
    """The gates a reconfiguration pauses and their current values (None: label missing).

    The five NVIDIA gates always (a missing one is paused and later restored to `true`, as NVIDIA does), and the
    `client` gate only when present and non-empty.
    """
    gates: dict[str, str | None] = {key: labels.get(key) for key in GATE_LABELS}
    client = labels.get(CLIENT_GATE)
    if client:
        gates[CLIENT_GATE] = client
    return gates


def pause_labels(saved: Mapping[str, str | None]) -> dict[str, str]:
    """The label values that pause every saved gate."""
    return {key: paused_value(value) for key, value in saved.items()}


def restore_labels(saved: Mapping[str, str | None]) -> dict[str, str]:
    """The label values that restore every saved gate."""
    return {key: restored_value(value) for key, value in saved.items()}


def paused_gates(labels: Mapping[str, str]) -> dict[str, str]:
    """Gates currently at the pause value (what an interrupted run left behind), with their restore values."""
    keys = (*GATE_LABELS, CLIENT_GATE)
    return {key: "true" for key in keys if labels.get(key) == PAUSED}
