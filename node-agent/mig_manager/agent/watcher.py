"""The agent's view of its Node: list, then watch from the list's resourceVersion; relist on 410 Gone; back off on
errors. The latest object is kept in memory and every newer version wakes the reconciler."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .errors import TransientError
from .kube import ApiError, Kube

log = logging.getLogger("mig_manager.agent.watch")


def _rv(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion", ""))


def newer(candidate: str, current: str) -> bool:
    """Whether resourceVersion `candidate` is newer than `current` (opaque strings: integers compared as such)."""
    if not current:
        return True
    if candidate.isdigit() and current.isdigit():
        return int(candidate) > int(current)
    return candidate != current


class NodeWatcher:
    def __init__(
        self,
        kube: Kube,
        on_change: Callable[[], None],
        stop: threading.Event,
        *,
        watch_timeout: float = 300.0,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
    ) -> None:
        self.kube = kube
        self.on_change = on_change
        self.stop_event = stop
        self.watch_timeout = watch_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.synced = threading.Event()
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._run, name="mig-manager-node-watch", daemon=True)

    @property
    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self._latest

    def start(self) -> None:
        self._thread.start()

    def update(self, obj: dict[str, Any] | None, *, force: bool = False) -> None:
        """Keep `obj` if it is newer than what we have (or `force`), and wake the reconciler."""
        with self._lock:
            if obj is not None and not force and not newer(_rv(obj), _rv(self._latest)):
                return
            self._latest = obj
        self.on_change()

    def refresh(self) -> dict[str, Any] | None:
        """Read the node now (after a conflict); raises TransientError."""
        node = self.kube.get_node()
        self.update(node)
        return self.latest

    def _run(self) -> None:
        delay = self.retry_initial
        while not self.stop_event.is_set():
            try:
                node, rv = self.kube.list_node()
                if node is None:
                    log.warning("node %s not found; waiting for it", self.kube.node_name)
                self.update(node, force=True)
                self.synced.set()
                delay = self.retry_initial
                while not self.stop_event.is_set():
                    for kind, obj in self.kube.watch_node(rv, self.watch_timeout):
                        rv = _rv(obj) or rv
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            self.update(None, force=True)
                        else:
                            self.update(obj)
                        if self.stop_event.is_set():
                            return
            except ApiError as exc:
                if exc.status == 410:
                    log.info("node watch expired (410); listing again")
                    continue
                log.warning("node watch failed: %s; retrying in %.1fs", exc, delay)
            except TransientError as exc:  # pragma: no cover - Kube raises ApiError subclasses only
                log.warning("node watch failed: %s", exc)
            if self.stop_event.wait(delay):
                return
            delay = min(delay * 2, self.retry_max)
