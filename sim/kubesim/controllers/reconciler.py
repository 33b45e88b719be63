"""A level-triggered controller: store events mark keys dirty; one loop reconciles each dirty key from the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable, Iterable
from typing import Any

from kubesim.errors import ApiError
from kubesim.registry import Registry, WriteOptions
from kubesim.store import Event, GroupResource, Stored

log = logging.getLogger("kubesim.controllers")

PODS: GroupResource = ("", "pods")
NODES: GroupResource = ("", "nodes")
DAEMONSETS: GroupResource = ("apps", "daemonsets")
DEPLOYMENTS: GroupResource = ("apps", "deployments")
REPLICASETS: GroupResource = ("apps", "replicasets")
JOBS: GroupResource = ("batch", "jobs")
CONFIGMAPS: GroupResource = ("", "configmaps")
SECRETS: GroupResource = ("", "secrets")


class Reconciler:
    """Subclasses list the group-resources they watch, map an event to keys (`keys_for`) and implement `reconcile`."""

    watches: frozenset[GroupResource] = frozenset()
    owned: GroupResource | None = None  # index objects of this group-resource by their controller's uid
    # Pacing per key: a pass that took d seconds is followed by the next one no sooner than `pace` x d seconds after
    # it ended. In a small cluster a pass takes well under a millisecond, so changes are handled at once; over
    # thousands of pods a burst of status writes costs a few passes instead of one per event.
    pace: float = 0.0

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._dirty: dict[Hashable, None] = {}
        self._wake = asyncio.Event()
        self._busy = False
        self._by_owner: dict[str, set[tuple[str, str]]] = {}
        self._cost: dict[Hashable, tuple[float, float]] = {}  # key -> (duration of the last pass, when it ended)
        self._deferred: set[Hashable] = set()
        if self.owned is not None:
            for stored in self.store.items(self.owned):
                self._index(stored, None)
        self.store.add_listener(self._on_event)

    # ------------------------------------------------------------ queue

    def _index(self, new: Stored | None, old: Stored | None) -> None:
        if old is not None:
            uid = controller_uid(old.obj)
            if uid:
                self._by_owner.get(uid, set()).discard((old.namespace, old.name))
        if new is not None:
            uid = controller_uid(new.obj)
            if uid:
                self._by_owner.setdefault(uid, set()).add((new.namespace, new.name))

    def owned_by(self, uid: str) -> list[Stored]:
        """The objects of `owned` whose controller has this uid (kept by the listener: no scan)."""
        assert self.owned is not None
        result = []
        for namespace, name in sorted(self._by_owner.get(uid, ())):
            stored = self.store.get(self.owned, namespace, name)
            if stored is not None:
                result.append(stored)
        return result

    def _on_event(self, event: Event) -> None:
        if event.gr == self.owned:
            if event.type == "DELETED":
                self._index(None, event.new)
            else:
                self._index(event.new, event.old)
        if event.gr in self.watches:
            for key in self.keys_for(event):
                self.enqueue(key)

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        return [(event.new.namespace, event.new.name)]

    def enqueue(self, key: Hashable) -> None:
        self._dirty[key] = None
        self._wake.set()

    def enqueue_after(self, key: Hashable, delay: float) -> None:
        asyncio.get_running_loop().call_later(max(delay, 0.0), self.enqueue, key)

    def idle(self) -> bool:
        return not self._dirty and not self._busy and not self._deferred

    def _release(self, key: Hashable) -> None:
        self._deferred.discard(key)
        self.enqueue(key)

    def reconcile(self, key: Any) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            loop = asyncio.get_running_loop()
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                if self.pace and key in self._cost:
                    took, ended = self._cost[key]
                    wait = self.pace * took - (loop.time() - ended)
                    if wait > 0:
                        if key not in self._deferred:
                            self._deferred.add(key)
                            loop.call_later(wait, self._release, key)
                        continue
                started = time.perf_counter()
                self._busy = True
                try:
                    self.reconcile(key)
                except Exception:  # a controller bug must not stop the simulated control plane
                    log.exception("%s failed on %s", type(self).__name__, key)
                finally:
                    self._busy = False
                    if self.pace:
                        self._cost[key] = (time.perf_counter() - started, loop.time())
                await asyncio.sleep(0)  # let the API serve between keys

    # ------------------------------------------------------------ writes

    def create(self, gr: GroupResource, namespace: str, obj: dict[str, Any]) -> Stored | None:
        rt = self.registry.any_type(gr)
        assert rt is not None
        try:
            return self.registry.create(rt, namespace, obj, WriteOptions())
        except ApiError as exc:
            log.warning("%s: creating %s in %s failed: %s", type(self).__name__, gr[1], namespace, exc)
            return None

    def write_status(self, gr: GroupResource, current: Stored, status: dict[str, Any]) -> None:
        if (current.obj.get("status") or {}) == status:
            return
        rt = self.registry.any_type(gr)
        assert rt is not None
        body = dict(current.obj)
        body["metadata"] = {k: v for k, v in current.obj["metadata"].items() if k != "resourceVersion"}
        body["status"] = status
        with contextlib.suppress(ApiError):
            self.registry.update(rt, current.namespace, current.name, body, WriteOptions(), subresource="status")

    def write(self, gr: GroupResource, obj: dict[str, Any], subresource: str = "") -> Stored | None:
        rt = self.registry.any_type(gr)
        assert rt is not None
        meta = obj["metadata"]
        try:
            return self.registry.update(rt, meta.get("namespace", ""), meta["name"], obj, WriteOptions(), subresource)
        except ApiError as exc:
            log.debug("%s: writing %s/%s failed: %s", type(self).__name__, gr[1], meta["name"], exc)
            return None

    def delete(self, gr: GroupResource, namespace: str, name: str, options: dict[str, Any] | None = None) -> None:
        rt = self.registry.any_type(gr)
        assert rt is not None
        with contextlib.suppress(ApiError):
            self.registry.delete(rt, namespace, name, options or {}, WriteOptions())


# ---------------------------------------------------------------------------------------------------------------------
# helpers over stored objects


def controller_uid(obj: dict[str, Any]) -> str:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return ""


def owner_ref(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def terminating(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def phase(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "Pending")


def active(pod: dict[str, Any]) -> bool:
    return not terminating(pod) and phase(pod) not in ("Succeeded", "Failed")


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def condition(kind: str, status: str, reason: str, message: str, now: str, old: list[dict[str, Any]]) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status changes."""
    previous = next((c for c in old if c.get("type") == kind), None)
    since = previous.get("lastTransitionTime", now) if previous and previous.get("status") == status else now
    result = {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}
    if previous and previous.get("status") == status and previous.get("reason") == reason:
        result["lastUpdateTime"] = previous.get("lastUpdateTime", since)
    else:
        result["lastUpdateTime"] = now
    return result
