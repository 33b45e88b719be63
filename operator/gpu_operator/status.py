"""ClusterPolicy status from observed objects: state, the Ready/Error condition pair, and Warning Events. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY = "Ready"
ERROR = "Error"

# reasons
RECONCILED = "Reconciled"
OPERAND_NOT_READY = "OperandNotReady"
RECONCILE_FAILED = "ReconcileFailed"
NO_GPU_NODES = "NoGPUNodes"
MIG_CONFIG_INVALID = "MigConfigInvalid"
UNSUPPORTED_FIELD = "UnsupportedField"

WARNING_REASONS = (RECONCILE_FAILED, MIG_CONFIG_INVALID, UNSUPPORTED_FIELD)


def daemonset_ready(ds: Mapping[str, Any] | None) -> bool:
    """NVIDIA's `isDaemonSetReady` from a DaemonSet's status (OnDelete: every scheduled pod ready and updated)."""
    if ds is None:
        return False
    meta = ds.get("metadata") or {}
    spec = ds.get("spec") or {}
    status = ds.get("status") or {}
    desired = status.get("desiredNumberScheduled", 0) or 0
    if desired == 0 and status:
        return (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
    if not status or status.get("numberUnavailable", 0):
        return False
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return bool(status.get("numberReady", 0) == desired and status.get("updatedNumberScheduled", 0) == desired)
    return bool(status.get("updatedNumberScheduled", 0) == desired and status.get("numberAvailable", 0) == desired)


@dataclass(frozen=True)
class Observed:
    """What the reconciler saw: everything the status is computed from."""

    namespace: str
    generation: int
    daemonsets: Mapping[str, Mapping[str, Any] | None]  # name -> body (None: not created yet)
    gpu_nodes: int
    unsupported: Sequence[str] = ()
    mig_config_problem: str | None = None
    error: str | None = None


def _condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    value = "True" if status else "False"
    old = previous.get(kind)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == value else None
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
        "observedGeneration": generation,
    }


def compute_status(observed: Observed, previous: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The new status; condition transition times are kept from `previous` when a condition's status is unchanged."""
    old_conditions = {c.get("type", ""): c for c in ((previous or {}).get("conditions") or [])}
    not_ready = sorted(name for name, ds in observed.daemonsets.items() if not daemonset_ready(ds))
    state = "notReady" if observed.error is not None or not_ready else "ready"
    error: tuple[str, str] | None = None
    if observed.error is not None:
        error = (RECONCILE_FAILED, observed.error)
    elif observed.mig_config_problem is not None:
        error = (MIG_CONFIG_INVALID, observed.mig_config_problem)
    elif not_ready:
        error = (OPERAND_NOT_READY, f"ClusterPolicy is not ready; DaemonSets not ready: [{' '.join(not_ready)}]")
    gen = observed.generation
    if error is not None:
        reason, message = error
        conditions = [
            _condition(READY, False, "Error", message, gen, old_conditions, now),
            _condition(ERROR, True, reason, message, gen, old_conditions, now),
        ]
    else:
        if observed.gpu_nodes == 0:
            reason, message = NO_GPU_NODES, "No GPU node found, watching for new nodes to join the cluster."
        elif observed.unsupported:
            reason = UNSUPPORTED_FIELD
            message = "ClusterPolicy is ready; these fields are kept but not acted on by this operator: " + ", ".join(
                observed.unsupported
            )
        else:
            reason, message = RECONCILED, "ClusterPolicy is ready as all resources have been successfully reconciled"
        conditions = [
            _condition(READY, True, reason, message, gen, old_conditions, now),
            _condition(ERROR, False, READY, "", gen, old_conditions, now),
        ]
    # status.observedGeneration is what `helm upgrade --wait` (kstatus) and GitOps tools read to know the new spec
    # has been acted on; the conditions carry it too, as NVIDIA's do.
    return {"state": state, "namespace": observed.namespace, "observedGeneration": gen, "conditions": conditions}


def ignored_status(previous: Mapping[str, Any] | None, namespace: str) -> dict[str, Any]:
    """The status of a ClusterPolicy that is not the active one: state `ignored`, earlier conditions dropped."""
    return {"state": "ignored", "namespace": namespace}


def status_differs(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change anything (no write when nothing changed)."""
    old = old or {}
    if any(old.get(k) != new.get(k) for k in ("state", "namespace", "observedGeneration")):
        return True
    return list(old.get("conditions") or []) != list(new.get("conditions") or [])


def warning_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(reason, message) of the Warning Events a status change calls for: a new error, or newly unsupported fields."""

    def active(status: Mapping[str, Any] | None) -> tuple[str, str] | None:
        for c in (status or {}).get("conditions") or []:
            if c.get("type") == ERROR and c.get("status") == "True" and c.get("reason") in WARNING_REASONS:
                return c["reason"], c["message"]
            if c.get("type") == READY and c.get("status") == "True" and c.get("reason") == UNSUPPORTED_FIELD:
                return c["reason"], c["message"]
        return None

    now, before = active(new), active(old)
    if now is not None and now != before:
        return [now]
    return []


def select_active(policies: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """NVIDIA's singleton rule: the oldest creationTimestamp wins, the lowest name breaks ties."""
    if not policies:
        return None
    return min(
        policies,
        key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "", (p.get("metadata") or {})["name"]),
    )
