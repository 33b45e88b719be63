"""Garbage collection by ownerReferences (background, foreground, orphan) and namespace deletion."""

from __future__ import annotations

import contextlib
from typing import Any

from kubesim.controllers.base import Controller
from kubesim.errors import ApiError
from kubesim.registry import NAMESPACES, Registry, WriteOptions
from kubesim.store import Event, GroupResource, Stored

Ref = tuple[GroupResource, str, str]  # (group-resource, namespace, name)


class GarbageCollector(Controller):
    """Deletes dependents whose owners are all gone; honours the `orphan` and `foregroundDeletion` finalizers."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self._dependents: dict[str, set[Ref]] = {}  # owner uid -> dependents
        self._owners: dict[Ref, set[str]] = {}  # dependent -> owner uids
        self._live: dict[str, Ref] = {}  # uid -> object

    def _index(self, event: Event) -> None:
        meta = event.new.obj["metadata"]
        ref: Ref = (event.gr, event.new.namespace, event.new.name)
        for uid in self._owners.pop(ref, set()):
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self._dependents[uid]
        if event.type == "DELETED":
            self._live.pop(str(meta.get("uid")), None)
            return
        self._live[str(meta.get("uid"))] = ref
        owners = {str(o.get("uid")) for o in meta.get("ownerReferences") or [] if o.get("uid")}
        if owners:
            self._owners[ref] = owners
            for uid in owners:
                self._dependents.setdefault(uid, set()).add(ref)

    def _on_event(self, event: Event) -> None:
        # The index is kept synchronously, so it is exact whenever a queued event is handled.
        if event.type == "DELETED":
            self._queue.put_nowait(event)
            self._index(event)
        else:
            self._index(event)
            if event.new.obj["metadata"].get("deletionTimestamp"):
                self._queue.put_nowait(event)

    def handle(self, event: Event) -> None:
        meta = event.new.obj["metadata"]
        uid = str(meta.get("uid"))
        if event.type == "DELETED":
            for ref in sorted(self._dependents.get(uid, set())):
                self._release(ref, uid)
            # A dependent vanishing may complete its owners' foreground deletion.
            for owner_uid in {str(o.get("uid")) for o in meta.get("ownerReferences") or []}:
                owner = self._live.get(owner_uid)
                if owner is not None:
                    self._finish_foreground(owner)
            return
        current = self.store.get(event.gr, event.new.namespace, event.new.name)
        if current is None:
            return
        finalizers = current.obj["metadata"].get("finalizers") or []
        if "orphan" in finalizers:
            for ref in sorted(self._dependents.get(uid, set())):
                self._drop_owner(ref, uid)
            self._remove_finalizer(current, event.gr, "orphan")
        elif "foregroundDeletion" in finalizers:
            for ref in sorted(self._dependents.get(uid, set())):
                self._delete(ref, "Foreground")
            self._finish_foreground((event.gr, current.namespace, current.name))

    def _finish_foreground(self, ref: Ref) -> None:
        current = self.store.get(*ref)
        if current is None:
            return
        meta = current.obj["metadata"]
        if "foregroundDeletion" not in (meta.get("finalizers") or []) or not meta.get("deletionTimestamp"):
            return
        if not self._dependents.get(str(meta.get("uid"))):
            self._remove_finalizer(current, ref[0], "foregroundDeletion")

    def _release(self, ref: Ref, gone_uid: str) -> None:
        current = self.store.get(*ref)
        if current is None:
            return
        refs = current.obj["metadata"].get("ownerReferences") or []
        if any(str(o.get("uid")) in self._live and str(o.get("uid")) != gone_uid for o in refs):
            self._drop_owner(ref, gone_uid)
        else:
            self._delete(ref, "Background")

    def _delete(self, ref: Ref, policy: str) -> None:
        rt = self.registry.any_type(ref[0])
        if rt is None:
            return
        with contextlib.suppress(ApiError):
            self.registry.delete(rt, ref[1], ref[2], {"propagationPolicy": policy}, WriteOptions())

    def _drop_owner(self, ref: Ref, uid: str) -> None:
        current = self.store.get(*ref)
        rt = self.registry.any_type(ref[0])
        if current is None or rt is None:
            return
        obj = current.copy()
        refs = [o for o in obj["metadata"].get("ownerReferences") or [] if str(o.get("uid")) != uid]
        if refs:
            obj["metadata"]["ownerReferences"] = refs
        else:
            obj["metadata"].pop("ownerReferences", None)
        self._write(rt, obj)

    def _remove_finalizer(self, current: Stored, gr: GroupResource, finalizer: str) -> None:
        rt = self.registry.any_type(gr)
        if rt is None:
            return
        obj = current.copy()
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        self._write(rt, obj)

    def _write(self, rt: Any, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(ApiError):
            self.registry.update(rt, meta.get("namespace", ""), meta["name"], obj, WriteOptions())


class NamespaceLifecycle(Controller):
    """Deleting a namespace deletes everything in it; the namespace goes once it is empty."""

    def _on_event(self, event: Event) -> None:
        if event.gr == NAMESPACES:
            if event.type != "DELETED" and event.new.obj["metadata"].get("deletionTimestamp"):
                self._queue.put_nowait(event)
        elif event.type == "DELETED" and event.new.namespace:
            ns = self.store.get(NAMESPACES, "", event.new.namespace)
            if ns is not None and ns.obj["metadata"].get("deletionTimestamp"):
                self._queue.put_nowait(event)

    def handle(self, event: Event) -> None:
        name = event.new.name if event.gr == NAMESPACES else event.new.namespace
        ns = self.store.get(NAMESPACES, "", name)
        if ns is None or not ns.obj["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for rt in self._namespaced_types():
            for stored in self.store.items(rt.group_resource, name):
                remaining += 1
                if not stored.obj["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(ApiError):
                        self.registry.delete(rt, name, stored.name, {"propagationPolicy": "Background"}, WriteOptions())
        empty = remaining == 0 or not any(self.store.count(rt.group_resource, name) for rt in self._namespaced_types())
        if empty and not ns.obj["metadata"].get("finalizers"):
            self.registry.remove_now(NAMESPACES, "", name)

    def _namespaced_types(self) -> list[Any]:
        seen: set[GroupResource] = set()
        result = []
        for rt in self.registry.types():
            if rt.namespaced and rt.group_resource not in seen:
                seen.add(rt.group_resource)
                result.append(rt)
        return result
