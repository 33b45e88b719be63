"""`meta.k8s.io/v1 Table` responses, so `kubectl get` and `helm status` print the real columns. Pure.

Columns follow the real server's printers for the common built-in kinds, a CRD's `additionalPrinterColumns` for custom
resources, and NAME/AGE otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubesim.resources import ResourceType
from kubesim.selectors import format_label_selector

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj, datetime], Any]]  # name, type, priority, cell


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _age(obj: Obj, now: datetime) -> str:
    created = _parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    return human_duration((now - created).total_seconds()) if created else "<unknown>"


def _name(obj: Obj, now: datetime) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _node_status(obj: Obj, now: datetime) -> str:
    ready = next((c for c in _status(obj).get("conditions") or [] if c.get("type") == "Ready"), None)
    text = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if _spec(obj).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _node_roles(obj: Obj, now: datetime) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in obj.get("metadata", {}).get("labels") or {} if k.startswith(prefix))
    return ",".join(r for r in roles if r) or "<none>"


def _node_address(kind: str) -> Callable[[Obj, datetime], str]:
    def cell(obj: Obj, now: datetime) -> str:
        for addr in _status(obj).get("addresses") or []:
            if addr.get("type") == kind:
                return str(addr.get("address", ""))
        return "<none>"

    return cell


def _node_info(key: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, now: str((_status(obj).get("nodeInfo") or {}).get(key, "<unknown>"))


def _pod_ready(obj: Obj, now: datetime) -> str:
    containers = _spec(obj).get("containers") or []
    ready = sum(1 for c in _status(obj).get("containerStatuses") or [] if c.get("ready"))
    return f"{ready}/{len(containers)}"


def _pod_status(obj: Obj, now: datetime) -> str:
    if obj.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    status = _status(obj)
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("reason") or status.get("phase") or "Pending")


def _pod_restarts(obj: Obj, now: datetime) -> int:
    return sum(int(c.get("restartCount", 0)) for c in _status(obj).get("containerStatuses") or [])


def _path(*keys: str, default: Any = "<none>") -> Callable[[Obj, datetime], Any]:
    def cell(obj: Obj, now: datetime) -> Any:
        cur: Any = obj
        for key in keys:
            if not isinstance(cur, dict) or key not in cur:
                return default
            cur = cur[key]
        return cur

    return cell


def _ready_of(ready_key: str, want: Callable[[Obj], int]) -> Callable[[Obj, datetime], str]:
    return lambda obj, now: f"{int(_status(obj).get(ready_key, 0) or 0)}/{want(obj)}"


def _count(key: str) -> Callable[[Obj, datetime], int]:
    return lambda obj, now: len(obj.get(key) or {})


def _node_selector(obj: Obj, now: datetime) -> str:
    selector = ((_spec(obj).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _job_status(obj: Obj, now: datetime) -> str:
    conditions = {c.get("type"): c.get("status") for c in _status(obj).get("conditions") or []}
    if conditions.get("Complete") == "True":
        return "Complete"
    if conditions.get("Failed") == "True":
        return "Failed"
    return "Suspended" if _spec(obj).get("suspend") else "Running"


def _job_completions(obj: Obj, now: datetime) -> str:
    return f"{int(_status(obj).get('succeeded', 0) or 0)}/{int(_spec(obj).get('completions', 1) or 1)}"


def _job_duration(obj: Obj, now: datetime) -> str:
    start = _parse_time(_status(obj).get("startTime"))
    if start is None:
        return ""
    end = _parse_time(_status(obj).get("completionTime")) or now
    return human_duration((end - start).total_seconds())


def _service_ports(obj: Obj, now: datetime) -> str:
    ports = _spec(obj).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _event_object(obj: Obj, now: datetime) -> str:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: Obj, now: datetime) -> str:
    seen = _parse_time(
        obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("metadata", {}).get("creationTimestamp")
    )
    return human_duration((now - seen).total_seconds()) if seen else "<unknown>"


def _deploy_replicas(obj: Obj) -> int:
    return int(_spec(obj).get("replicas", 1) or 0)


def _role_ref(obj: Obj, now: datetime) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


AGE: Column = ("Age", "string", 0, _age)
CREATED_AT: Column = ("Created At", "date", 0, lambda o, n: o.get("metadata", {}).get("creationTimestamp", ""))
NAME: Column = ("Name", "string", 0, _name)

COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "nodes"): [
        NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        AGE,
        ("Version", "string", 0, _node_info("kubeletVersion")),
        ("Internal-IP", "string", 1, _node_address("InternalIP")),
        ("External-IP", "string", 1, _node_address("ExternalIP")),
        ("OS-Image", "string", 1, _node_info("osImage")),
        ("Kernel-Version", "string", 1, _node_info("kernelVersion")),
        ("Container-Runtime", "string", 1, _node_info("containerRuntimeVersion")),
    ],
    ("", "pods"): [
        NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, _pod_restarts),
        AGE,
        ("IP", "string", 1, _path("status", "podIP")),
        ("Node", "string", 1, _path("spec", "nodeName")),
    ],
    ("", "namespaces"): [NAME, ("Status", "string", 0, _path("status", "phase", default="")), AGE],
    ("", "configmaps"): [
        NAME,
        ("Data", "integer", 0, lambda o, n: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        AGE,
    ],
    ("", "secrets"): [
        NAME,
        ("Type", "string", 0, _path("type", default="")),
        ("Data", "integer", 0, _count("data")),
        AGE,
    ],
    ("", "serviceaccounts"): [NAME, AGE],
    ("", "services"): [
        NAME,
        ("Type", "string", 0, _path("spec", "type", default="ClusterIP")),
        ("Cluster-IP", "string", 0, _path("spec", "clusterIP")),
        ("External-IP", "string", 0, lambda o, n: "<none>"),
        ("Port(s)", "string", 0, _service_ports),
        AGE,
    ],
    ("", "events"): [
        ("Last Seen", "string", 0, _event_last_seen),
        ("Type", "string", 0, _path("type", default="")),
        ("Reason", "string", 0, _path("reason", default="")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, _path("message", default="")),
    ],
    ("apps", "deployments"): [
        NAME,
        ("Ready", "string", 0, _ready_of("readyReplicas", _deploy_replicas)),
        ("Up-to-date", "integer", 0, _path("status", "updatedReplicas", default=0)),
        ("Available", "integer", 0, _path("status", "availableReplicas", default=0)),
        AGE,
        ("Selector", "string", 1, lambda o, n: format_label_selector(_spec(o).get("selector")) or "<none>"),
    ],
    ("apps", "replicasets"): [
        NAME,
        ("Desired", "integer", 0, lambda o, n: _deploy_replicas(o)),
        ("Current", "integer", 0, _path("status", "replicas", default=0)),
        ("Ready", "integer", 0, _path("status", "readyReplicas", default=0)),
        AGE,
    ],
    ("apps", "daemonsets"): [
        NAME,
        ("Desired", "integer", 0, _path("status", "desiredNumberScheduled", default=0)),
        ("Current", "integer", 0, _path("status", "currentNumberScheduled", default=0)),
        ("Ready", "integer", 0, _path("status", "numberReady", default=0)),
        ("Up-to-date", "integer", 0, _path("status", "updatedNumberScheduled", default=0)),
        ("Available", "integer", 0, _path("status", "numberAvailable", default=0)),
        ("Node Selector", "string", 0, _node_selector),
        AGE,
    ],
    ("batch", "jobs"): [
        NAME,
        ("Status", "string", 0, _job_status),
        ("Completions", "string", 0, _job_completions),
        ("Duration", "string", 0, _job_duration),
        AGE,
    ],
    ("coordination.k8s.io", "leases"): [
        NAME,
        ("Holder", "string", 0, _path("spec", "holderIdentity", default="")),
        AGE,
    ],
    ("rbac.authorization.k8s.io", "roles"): [NAME, CREATED_AT],
    ("rbac.authorization.k8s.io", "clusterroles"): [NAME, CREATED_AT],
    ("rbac.authorization.k8s.io", "rolebindings"): [NAME, ("Role", "string", 0, _role_ref), AGE],
    ("rbac.authorization.k8s.io", "clusterrolebindings"): [NAME, ("Role", "string", 0, _role_ref), AGE],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [NAME, CREATED_AT],
}


def _json_path(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for key in path.strip().lstrip(".").split("."):
        if not key:
            continue
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def _printer_columns(crd: Obj | None, version: str) -> list[Column]:
    if not crd:
        return [NAME, AGE]
    versions: list[Obj] = (crd.get("spec") or {}).get("versions") or []
    spec_version: Obj = next((v for v in versions if v.get("name") == version), {})
    extra = spec_version.get("additionalPrinterColumns")
    if extra is None:
        return [NAME, AGE]
    columns: list[Column] = [NAME]
    for col in extra:
        path = str(col.get("jsonPath", ""))
        kind = str(col.get("type", "string"))

        def cell(obj: Obj, now: datetime, path: str = path, kind: str = kind) -> Any:
            value = _json_path(obj, path)
            if value is None:
                return None
            if kind == "date":
                created = _parse_time(value)
                return human_duration((now - created).total_seconds()) if created else value
            return value

        columns.append((str(col.get("name", "")), kind, int(col.get("priority", 0)), cell))
    return columns


def columns_for(rt: ResourceType, crd: Obj | None = None) -> list[Column]:
    if rt.custom:
        return _printer_columns(crd, rt.version)
    return COLUMNS.get(rt.group_resource, [NAME, AGE])


def partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    rt: ResourceType,
    objects: list[Obj],
    *,
    resource_version: str = "",
    include_object: str = "Metadata",
    crd: Obj | None = None,
    now: datetime | None = None,
    definitions: bool = True,
    list_meta: Obj | None = None,
) -> Obj:
    """A Table of `objects`; `include_object` is None, Metadata (PartialObjectMetadata) or Object."""
    now = now or datetime.now(UTC)
    columns = columns_for(rt, crd)
    rows = []
    for obj in objects:
        row: Obj = {"cells": [cell(obj, now) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    meta = dict(list_meta or {})
    if resource_version:
        meta["resourceVersion"] = resource_version
    result: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows}
    result["columnDefinitions"] = (
        [
            {
                "name": name,
                "type": kind if kind != "date" else "string",
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, kind, priority, _ in columns
        ]
        if definitions
        else []
    )
    return result


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a meta.k8s.io Table first (kubectl get, helm status)."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
        if part.strip().startswith("application/json") and "as" not in params:
            return False
    return False
