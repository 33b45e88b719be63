"""Which pods may run on which nodes, as the scheduler and the DaemonSet controller decide it. Pure.

nodeSelector, required node affinity (`nodeSelectorTerms`: `matchExpressions` on labels, `matchFields` on
`metadata.name`), taints against tolerations, extended-resource fit, and the hashes that name pod templates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

# What the DaemonSet controller adds to every daemon pod (pkg/controller/daemon/util.AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS: tuple[dict[str, Any], ...] = (
    {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
)


def template_hash(template: Mapping[str, Any]) -> str:
    """A short, stable hash of a pod template (the `pod-template-hash` / `controller-revision-hash` value)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    # Kubernetes renders its hash in a "safe" alphabet without vowels; any stable label value does here.
    table = str.maketrans("0123456789abcdef", "bcdfghjklmnpqrst")
    return digest[:10].translate(table)


def _requirement_matches(req: Mapping[str, Any], value: str | None) -> bool:
    op = req.get("operator", "In")
    values = [str(v) for v in req.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or not values:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """One `nodeSelectorTerm`: all its expressions and fields must match (an empty term matches nothing)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node.get("metadata", {}).get("labels") or {}
    for req in exprs:
        if not _requirement_matches(req, labels.get(req.get("key", ""))):
            return False
    for req in fields:
        value = node["metadata"].get("name") if req.get("key") == "metadata.name" else None
        if not _requirement_matches(req, value):
            return False
    return True


def node_matches(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector and required node affinity (the terms are ORed)."""
    labels = node.get("metadata", {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != str(value):
            return False
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if affinity:
        terms = affinity.get("nodeSelectorTerms") or []
        if not any(term_matches(t, node) for t in terms):
            return False
    return True


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        key = tol.get("key") or ""
        if not key and op == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if op == "Exists" or str(tol.get("value") or "") == str(taint.get("value") or ""):
            return True
    return False


def untolerated(
    tolerations: Sequence[Mapping[str, Any]], taints: Iterable[Mapping[str, Any]], effects: Sequence[str]
) -> list[Mapping[str, Any]]:
    return [t for t in taints if t.get("effect") in effects and not tolerates(tolerations, t)]


def node_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((node.get("spec") or {}).get("taints") or [])


def node_ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def daemon_should_run(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The DaemonSet controller's predicate: node selector and affinity, and no untolerated NoSchedule/NoExecute
    taint (with the tolerations it adds to every daemon pod)."""
    if not node_matches(pod_spec, node):
        return False
    tolerations = [*(pod_spec.get("tolerations") or []), *DAEMON_TOLERATIONS]
    return not untolerated(tolerations, node_taints(node), ("NoSchedule", "NoExecute"))


def daemon_should_continue(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A running daemon pod stays while the node matches and no NoExecute taint is untolerated."""
    if not node_matches(pod_spec, node):
        return False
    tolerations = [*(pod_spec.get("tolerations") or []), *DAEMON_TOLERATIONS]
    return not untolerated(tolerations, node_taints(node), ("NoExecute",))


def daemon_placement(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) in one pass."""
    if not node_matches(pod_spec, node):
        return False, False
    taints = node_taints(node)
    if not taints:
        return True, True
    tolerations = [*(pod_spec.get("tolerations") or []), *DAEMON_TOLERATIONS]
    return (
        not untolerated(tolerations, taints, ("NoSchedule", "NoExecute")),
        not untolerated(tolerations, taints, ("NoExecute",)),
    )


def with_daemon_tolerations(tolerations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result = [dict(t) for t in tolerations]
    for tol in DAEMON_TOLERATIONS:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in result):
            result.append(dict(tol))
    return result


_EXTENDED_PREFIXES = ("nvidia.com/",)


def requested_extended(pod_spec: Mapping[str, Any]) -> dict[str, int]:
    """Extended resources (`nvidia.com/*`) a pod asks for: limits, or requests, summed over its containers."""
    total: dict[str, int] = {}
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        for name, value in wanted.items():
            if name.startswith(_EXTENDED_PREFIXES):
                try:
                    total[name] = total.get(name, 0) + int(str(value))
                except ValueError:
                    continue
    return total


def schedulable_reason(
    pod_spec: Mapping[str, Any], node: Mapping[str, Any], used: Mapping[str, int] | None = None
) -> str:
    """Why a pod cannot be scheduled onto a node ("" when it can), in the scheduler's words."""
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(
        pod_spec.get("tolerations") or [], {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return "node(s) were unschedulable"
    if not node_matches(pod_spec, node):
        return "node(s) didn't match Pod's node affinity/selector"
    bad = untolerated(pod_spec.get("tolerations") or [], node_taints(node), ("NoSchedule", "NoExecute"))
    if bad:
        t = bad[0]
        value = f"={t.get('value')}" if t.get("value") else ""
        return f"node(s) had untolerated taint {{{t.get('key')}{value}: {t.get('effect')}}}"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for name, count in requested_extended(pod_spec).items():
        try:
            have = int(str(allocatable.get(name, "0")))
        except ValueError:
            have = 0
        if count > have - (used or {}).get(name, 0):
            return f"Insufficient {name}"
    return ""
