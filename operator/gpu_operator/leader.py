"""Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a lease is expired when its record has not
changed for `lease_duration` seconds of this process's own clock. I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gpu_operator.apply import ApiStatusError, Kube

log = logging.getLogger("gpu_operator.leader")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_period: float = 5.0,
        retry_period: float = 2.0,
    ) -> None:
        self.kube = kube
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_period = renew_period
        self.retry_period = retry_period
        self.is_leader = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0

    def _spec(self, transitions: int, acquire_time: str | None = None) -> dict[str, Any]:
        now = _micro_now()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, int(self.lease_duration)),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self, create: bool = True) -> bool:
        """One attempt; True when this process holds the lease afterwards.

        Renewals pass `create=False`: a Lease deleted under a running leader (helm uninstall) means the lease is lost,
        and recreating it would leave an object behind that nobody owns.
        """
        try:
            lease = self.kube.get(self.path)
            if lease is None and not create:
                log.warning("leader election: lease %s/%s is gone", self.namespace, self.name)
                return False
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(0),
                }
                self.kube.create(self.collection, body)
                self._became(True)
                return True
            spec = lease.get("spec") or {}
            record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            now = time.monotonic()
            if record != self._observed:
                self._observed, self._observed_at = record, now
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and now - self._observed_at < duration:
                self._became(False)
                return False
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder == self.identity:
                new_spec = self._spec(transitions, spec.get("acquireTime"))
            else:
                new_spec = self._spec(transitions + 1)
            lease["spec"] = new_spec
            self.kube.put(self.path, lease)
            self._became(True)
            return True
        except ApiStatusError as exc:
            log.info("leader election attempt failed: %s", exc)
            return False

    def _became(self, leader: bool) -> None:
        if leader:
            self._last_renew = time.monotonic()
        if leader != self.is_leader:
            log.info(
                "leader election: %s %s lease %s/%s",
                self.identity,
                "acquired" if leader else "waits for",
                self.namespace,
                self.name,
            )
        self.is_leader = leader

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self.try_acquire_or_renew():
                return True
            stop.wait(self.retry_period)
        return False

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Renew until `stop`; call `on_lost` when the lease cannot be renewed within its duration."""
        while not stop.wait(self.renew_period):
            if self.try_acquire_or_renew(create=False):
                continue
            if time.monotonic() - self._last_renew >= self.lease_duration or self._held_by_other():
                log.error("leader election: lost lease %s/%s", self.namespace, self.name)
                self.is_leader = False
                on_lost()
                return

    def _held_by_other(self) -> bool:
        return bool(self._observed and self._observed[0] and self._observed[0] != self.identity)

    def release(self) -> None:
        """Give the lease up so another replica takes over at once."""
        if not self.is_leader:
            return
        try:
            lease = self.kube.get(self.path)
            if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                self.kube.put(self.path, lease)
        except ApiStatusError as exc:
            log.info("leader election: release failed: %s", exc)
        self.is_leader = False
