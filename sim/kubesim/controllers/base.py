"""A controller reacts to committed store events on the server's event loop, one at a time."""

from __future__ import annotations

import asyncio
import logging

from kubesim.registry import Registry
from kubesim.store import Event, GroupResource

log = logging.getLogger("kubesim.controllers")


class Controller:
    """Subclasses set `resources` (or leave it empty for every group-resource) and implement `handle`."""

    resources: frozenset[GroupResource] = frozenset()

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.store = registry.store
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.store.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if not self.resources or event.gr in self.resources:
            self._queue.put_nowait(event)

    def handle(self, event: Event) -> None:
        raise NotImplementedError

    def idle(self) -> bool:
        return self._queue.empty()

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                self.handle(event)
            except Exception:  # a controller bug must not stop the simulated control plane
                log.exception("%s failed on %s %s/%s", type(self).__name__, event.type, event.gr, event.new.name)
