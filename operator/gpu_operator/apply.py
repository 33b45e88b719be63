"""Writing to the cluster: a thin REST layer over the kubernetes client, server-side apply with one field manager,
pruning, and no request at all when nothing changed. I/O.

An object is applied only when its rendered content hash (annotation `nvidia.com/last-applied-hash`) differs from the
live object's, or when a field the operator owns was changed by someone else; otherwise nothing is sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from gpu_operator.errors import ApplyError
from gpu_operator.policy import KIND as POLICY_KIND
from gpu_operator.render import MANAGED_BY, MANAGED_BY_LABEL, content_hash, object_key

log = logging.getLogger("gpu_operator.apply")

FIELD_MANAGER = "gpu-operator"
HASH_ANNOTATION = "nvidia.com/last-applied-hash"

# kind -> (API prefix, plural, namespaced); the kinds the operator renders, applies and prunes
KINDS: dict[str, tuple[str, str, bool]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
}
PRUNE_ORDER = (
    "DaemonSet",
    "Service",
    "ConfigMap",
    "RoleBinding",
    "ClusterRoleBinding",
    "Role",
    "ClusterRole",
    "ServiceAccount",
)

POLICIES_PATH = "/apis/nvidia.com/v1/clusterpolicies"
NODES_PATH = "/api/v1/nodes"
CRDS_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


class ApiStatusError(ApplyError):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def collection_path(kind: str, namespace: str = "") -> str:
    prefix, plural, namespaced = KINDS[kind]
    if namespaced and namespace:
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def object_path(kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(kind, namespace)}/{quote(name)}"


class Kube:
    """The few REST calls the operator makes, over `kubernetes.client.ApiClient`; counts its writes by verb."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        if method != "GET":
            with self._lock:
                self.writes[method] += 1
        try:
            _, url, headers, payload, _ = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(method, url, header_params=headers, body=payload, _request_timeout=60)
            data = response.read()
            status = int(response.status)
        except ApiException as exc:
            status, data = int(exc.status or 0), (exc.body or "")
        if status == 404:
            return None
        if status >= 400 or status == 0:
            message = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                message = json.loads(message).get("message", message)
            raise ApiStatusError(status, f"{method} {path}: {message}")
        if not data:
            return {}
        result: dict[str, Any] = json.loads(data)
        return result

    def get(self, path: str) -> dict[str, Any] | None:
        return self._call("GET", path)

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        result = self._call("GET", path, query=query) or {}
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        result = self._call("PATCH", path, json.dumps(body), query, "application/apply-patch+yaml")
        if result is None:
            raise ApiStatusError(404, f"apply {path}: not found")
        return result

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call("PATCH", path, dict(body), [("fieldManager", FIELD_MANAGER)], "application/merge-patch+json")

    def put(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call("PUT", path, dict(body), [("fieldManager", FIELD_MANAGER)])

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return self._call("POST", path, dict(body), [("fieldManager", FIELD_MANAGER)])

    def delete(self, path: str) -> None:
        self._call("DELETE", path, {"propagationPolicy": "Background"})


def contains(desired: Any, live: Any) -> bool:
    """Whether `live` holds every field of `desired` with the same value (extra fields such as defaults allowed)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and contains(value, live[key]) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        if _keyed(desired) and _keyed(live):
            # Lists merged by name (containers, env, volumes, ports): server-side apply owns the items, not their
            # order, so a server that orders them differently must not make every reconcile write again.
            by_name = {item["name"]: item for item in live}
            return all(d["name"] in by_name and contains(d, by_name[d["name"]]) for d in desired)
        return all(contains(d, ls) for d, ls in zip(desired, live, strict=True))
    return bool(desired == live)


def _keyed(items: list[Any]) -> bool:
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def with_hash(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object with its content hash annotation (the hash is over the object without that annotation)."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    out["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = content_hash(obj)
    return out


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Apply when missing, when the content hash changed, or when someone else changed a field the operator owns."""
    if live is None:
        return True
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    wanted = desired["metadata"]["annotations"][HASH_ANNOTATION]
    if annotations.get(HASH_ANNOTATION) != wanted:
        return True
    return not contains(desired, live)


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    live: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)


def _owned_by_policy(obj: Mapping[str, Any]) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("kind") == POLICY_KIND and str(r.get("apiVersion", "")).startswith("nvidia.com/") for r in refs)


def _describe(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{obj['kind']}/{ns + '/' if ns else ''}{meta['name']}"


class Applier:
    """Applies the rendered objects and prunes what is no longer rendered, for one operand namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def sync(self, desired: Iterable[Mapping[str, Any]], prune: bool = True) -> SyncResult:
        result = SyncResult()
        wanted = [with_hash(obj) for obj in desired]
        for obj in wanted:
            meta = obj["metadata"]
            path = object_path(obj["kind"], meta.get("namespace", ""), meta["name"])
            live = self.kube.get(path)
            if needs_apply(obj, live):
                live = self.kube.apply(path, obj)
                result.applied.append(_describe(obj))
            assert live is not None
            result.live[object_key(obj)] = live
        if prune:
            keep = {object_key(obj) for obj in wanted}
            for kind in PRUNE_ORDER:
                _, _, namespaced = KINDS[kind]
                path = collection_path(kind, self.namespace if namespaced else "")
                for item in self.kube.list(path, f"{MANAGED_BY_LABEL}={MANAGED_BY}"):
                    item.setdefault("kind", kind)
                    item.setdefault("apiVersion", _api_version(kind))
                    if object_key(item) in keep or not _owned_by_policy(item):
                        continue
                    meta = item["metadata"]
                    self.kube.delete(object_path(kind, meta.get("namespace", ""), meta["name"]))
                    result.pruned.append(_describe(item))
        if result.applied or result.pruned:
            log.info("applied=%s pruned=%s", result.applied, result.pruned)
        return result


def _api_version(kind: str) -> str:
    prefix = KINDS[kind][0]
    return "v1" if prefix == "/api/v1" else prefix.removeprefix("/apis/")
