"""The in-memory object store: objects by group-resource, one global resourceVersion, watch fan-out, bounded history.

Not thread-safe by design: every call happens on the server's event loop, and no call awaits, so each write is
atomic with respect to every reader and watcher. Stored objects are never mutated after a commit; writers build a new
dict, so readers may share references and the serialised form can be cached.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubesim.errors import gone

GroupResource = tuple[str, str]
ObjectKey = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped objects


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Stored:
    """One committed version of an object, with its JSON encoding computed once on demand."""

    __slots__ = ("_raw", "obj")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])

    def copy(self) -> dict[str, Any]:
        """A deep copy the caller may mutate."""
        result: dict[str, Any] = json.loads(self.raw)
        return result


@dataclass(frozen=True)
class Event:
    type: str  # ADDED, MODIFIED or DELETED
    rv: int
    gr: GroupResource
    namespace: str
    new: Stored
    old: Stored | None = None


@dataclass(eq=False)
class Watcher:
    """A subscription to one group-resource (optionally one namespace). Events arrive in commit order; `None` closes."""

    gr: GroupResource
    namespace: str = ""
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        return not self.namespace or event.namespace == self.namespace


class Store:
    def __init__(self, history_size: int = 10_000) -> None:
        self.rv = 0
        self._objects: dict[GroupResource, dict[ObjectKey, Stored]] = {}
        self._history: deque[Event] = deque(maxlen=max(1, history_size))
        self.compacted_rv = 0
        self._watchers: dict[GroupResource, set[Watcher]] = {}
        self._listeners: list[Callable[[Event], None]] = []

    # ------------------------------------------------------------ reads

    def get(self, gr: GroupResource, namespace: str, name: str) -> Stored | None:
        bucket = self._objects.get(gr)
        return bucket.get((namespace, name)) if bucket else None

    def items(self, gr: GroupResource, namespace: str = "") -> list[Stored]:
        bucket = self._objects.get(gr)
        if not bucket:
            return []
        items = [s for (ns, _), s in bucket.items() if ns == namespace] if namespace else list(bucket.values())
        items.sort(key=lambda s: (s.namespace, s.name))
        return items

    def count(self, gr: GroupResource, namespace: str = "") -> int:
        bucket = self._objects.get(gr) or {}
        return sum(1 for ns, _ in bucket if not namespace or ns == namespace)

    def group_resources(self) -> list[GroupResource]:
        return [gr for gr, bucket in self._objects.items() if bucket]

    def all_objects(self) -> Iterator[tuple[GroupResource, Stored]]:
        for gr, bucket in self._objects.items():
            for stored in bucket.values():
                yield gr, stored

    # ------------------------------------------------------------ writes

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, gr: GroupResource, obj: dict[str, Any]) -> Stored:
        """Commit a create or an update. The caller has stamped everything but resourceVersion."""
        meta = obj["metadata"]
        key = (str(meta.get("namespace", "")), str(meta["name"]))
        bucket = self._objects.setdefault(gr, {})
        old = bucket.get(key)
        rv = self.next_rv()
        meta["resourceVersion"] = str(rv)
        stored = Stored(obj)
        bucket[key] = stored
        self._emit(Event("MODIFIED" if old else "ADDED", rv, gr, key[0], stored, old))
        return stored

    def remove(self, gr: GroupResource, namespace: str, name: str, final: dict[str, Any] | None = None) -> Stored:
        """Delete an object; the DELETED event carries its last state with the deletion's resourceVersion."""
        bucket = self._objects.get(gr) or {}
        old = bucket.pop((namespace, name))
        obj = final if final is not None else old.copy()
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        stored = Stored(obj)
        self._emit(Event("DELETED", rv, gr, namespace, stored, old))
        return stored

    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self.compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in self._watchers.get(event.gr, ()):
            if watcher.wants(event):
                watcher.queue.put_nowait(event)
        for listener in self._listeners:
            listener(event)

    # ------------------------------------------------------------ watches

    def watch(self, gr: GroupResource, namespace: str = "", since: int | None = None) -> Watcher:
        """Subscribe; with `since`, first replay every event after that resourceVersion (410 Gone if compacted)."""
        if since is not None and since < self.compacted_rv:
            raise gone(f"too old resource version: {since} ({self.compacted_rv + 1})")
        watcher = Watcher(gr, namespace)
        if since is not None and since < self.rv:
            for event in self._history:
                if event.rv > since and event.gr == gr and watcher.wants(event):
                    watcher.queue.put_nowait(event)
        self._watchers.setdefault(gr, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.gr, set()).discard(watcher)

    def close_watches(self, gr: GroupResource | None = None) -> int:
        """Cut open watches (all, or those of one group-resource); returns how many."""
        count = 0
        for key, watchers in self._watchers.items():
            if gr is not None and key != gr:
                continue
            for watcher in watchers:
                watcher.queue.put_nowait(None)
                count += 1
            watchers.clear()
        return count

    def history(self) -> list[Event]:
        """The events still kept for resuming watches, oldest first."""
        return list(self._history)

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call `listener` synchronously on every committed event (controllers queue work from it)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        return {
            "resourceVersion": self.rv,
            "objects": [{"group": gr[0], "resource": gr[1], "object": s.obj} for gr, s in self.all_objects()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        for entry in data.get("objects", []):
            gr = (str(entry["group"]), str(entry["resource"]))
            obj = entry["object"]
            meta = obj["metadata"]
            self._objects.setdefault(gr, {})[(str(meta.get("namespace", "")), str(meta["name"]))] = Stored(obj)
        self.rv = max(self.rv, int(data.get("resourceVersion", 0)))
        self.compacted_rv = self.rv
