"""The reconciler: reads the cluster, calls the pure functions, writes only differences. I/O, run in one worker thread.

Triggers (kopf handlers, a periodic resync) only `request()` a reconcile; requests that arrive while one runs are
coalesced into the next. Node events label that one node directly.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gpu_operator.apply import NODES_PATH, POLICIES_PATH, ApiStatusError, Applier, Kube, object_path
from gpu_operator.errors import OperatorError, PolicyError
from gpu_operator.inventory import INVENTORY_ANNOTATION
from gpu_operator.metrics import Metrics, default_metrics
from gpu_operator.nodes import DEPLOY_MIG_MANAGER, GPU_PRESENT, MIG_CONFIG, label_changes
from gpu_operator.policy import (
    API_VERSION,
    DEFAULT_GPU_CLIENTS_CONFIG_MAP,
    DEFAULT_MIG_CONFIG_MAP,
    KIND,
    ClusterPolicySpec,
    parse_spec,
    unsupported_fields,
)
from gpu_operator.render import DAEMONSET_NAMES, ClusterFacts, Owner, enabled_components, object_key, render
from gpu_operator.status import (
    Observed,
    compute_status,
    ignored_status,
    select_active,
    status_differs,
    warning_events,
)
from gpu_operator.validation import NodeFacts, summarize, validate_gpu_clients_config, validate_mig_config

log = logging.getLogger("gpu_operator.controller")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Settings:
    namespace: str
    image_env: Mapping[str, str] = field(default_factory=dict)
    resync_period: float = 60.0  # seconds between full reconciles of an unchanged cluster
    min_interval: float = 0.2  # seconds between reconciles, to coalesce bursts of events
    max_backoff: float = 30.0


def _node_fingerprint(body: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        labels.get(GPU_PRESENT),
        labels.get(MIG_CONFIG),
        labels.get(DEPLOY_MIG_MANAGER),
        annotations.get(INVENTORY_ANNOTATION),
    )


class Controller:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        metrics: Metrics | None = None,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or default_metrics()
        self.clock = clock
        self.applier = Applier(kube, settings.namespace)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._policy: ClusterPolicySpec | None = None
        self._policy_known = False
        self._custom_config: str | None = None
        self._custom_clients: str | None = None
        self._nodes: dict[str, tuple[Any, ...]] = {}
        self._patched_from: dict[str, str | None] = {}  # node -> resourceVersion its last label patch was computed on
        self.reconciles = 0
        self.last_success = 0.0
        self.alive = True
        self.identity = socket.gethostname()

    # ------------------------------------------------------------------ triggers

    def request(self, reason: str = "") -> None:
        log.debug("reconcile requested reason=%s", reason)
        self._wake.set()

    def watches_configmap(self, name: str) -> bool:
        """The custom configs (validation) and the operator's own ConfigMaps (an edit is reverted at once)."""
        return name in (
            self._custom_config,
            self._custom_clients,
            DEFAULT_MIG_CONFIG_MAP,
            DEFAULT_GPU_CLIENTS_CONFIG_MAP,
        )

    def node_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Label one node from its event, and ask for a reconcile only when something status depends on changed."""
        name = (body.get("metadata") or {}).get("name", "")
        if event_type == "DELETED":
            with self._lock:
                known = self._nodes.pop(name, None)
                self._patched_from.pop(name, None)
            if known is not None:
                self.request("node deleted")
            return
        body = self.label_node(body)
        fingerprint = _node_fingerprint(body)
        with self._lock:
            changed = self._nodes.get(name) != fingerprint
            self._nodes[name] = fingerprint
        if changed:
            self.request("node changed")

    def label_node(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Patch one node's labels when they differ from the desired ones; returns the node as it is now."""
        if not self._policy_known:
            return body
        meta = body.get("metadata") or {}
        name, version = meta.get("name", ""), meta.get("resourceVersion")
        changes = label_changes(meta.get("labels") or {}, meta.get("annotations") or {}, self._policy)
        if not changes:
            return body
        with self._lock:
            if version and self._patched_from.get(name) == version:
                return body  # a stale view of a node already patched from this very version
        log.info("labelling node=%s changes=%s", name, changes)
        self.metrics.inc("node_label_writes_total")
        patched = self.kube.merge_patch(f"{NODES_PATH}/{name}", {"metadata": {"labels": changes}})
        with self._lock:
            self._patched_from[name] = version
        return patched if patched is not None else body

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Reconcile on request and every resync period until `stop` is set; back off after failures."""
        backoff = 0.0
        self._wake.set()
        while not stop.is_set():
            timeout = backoff if backoff else self.settings.resync_period
            if not self._wake.wait(timeout) and backoff == 0.0:
                log.debug("periodic resync")
            if stop.is_set():
                break
            self._wake.clear()
            started = time.monotonic()
            try:
                self.reconcile()
            except Exception as exc:
                backoff = min(self.settings.max_backoff, max(0.5, backoff * 2))
                self.metrics.inc("reconciles_total", result="error")
                log.exception("reconcile failed, retrying in %.1fs: %s", backoff, exc)
                continue
            finally:
                self.metrics.inc("reconcile_duration_seconds_sum", time.monotonic() - started)
                for verb, count in self.kube.writes.items():
                    self.metrics.set("writes_total", count, verb=verb)
            backoff = 0.0
            self.metrics.inc("reconciles_total", result="success")
            self.last_success = time.monotonic()
            stop.wait(self.settings.min_interval)

    # ------------------------------------------------------------------ one reconcile

    def reconcile(self) -> None:
        self.reconciles += 1
        policies = self.kube.list(POLICIES_PATH)
        active = select_active(policies)
        for other in policies:
            if other is not active:
                self._mark_ignored(other)
        if active is None:
            self._policy, self._policy_known, self._custom_config, self._custom_clients = None, False, None, None
            self.metrics.set("clusterpolicy_ready", 0)
            return
        meta = active["metadata"]
        old_status = active.get("status") or None
        try:
            spec = parse_spec(active.get("spec"))
        except PolicyError as exc:
            self._policy_known = False
            observed = Observed(self.settings.namespace, int(meta.get("generation") or 0), {}, 0, error=str(exc))
            self._write_status(active, old_status, compute_status(observed, old_status, self.clock()))
            return
        self._policy, self._policy_known = spec, True
        enabled = spec.mig_manager.is_enabled()
        self._custom_config = spec.mig_manager.custom_config_name() if enabled else None
        clients = spec.mig_manager.gpu_clients_config_map()
        self._custom_clients = clients if enabled and clients != DEFAULT_GPU_CLIENTS_CONFIG_MAP else None

        nodes = self.kube.list(NODES_PATH)
        facts: list[NodeFacts] = []
        for node in nodes:
            node = dict(self.label_node(node))
            name = node["metadata"]["name"]
            with self._lock:
                self._nodes[name] = _node_fingerprint(node)
            facts.append(NodeFacts.from_body(node))
        gpu_nodes = sum(1 for f in facts if f.labels.get(GPU_PRESENT) == "true")
        self.metrics.set("gpu_nodes", gpu_nodes)

        error: str | None = None
        daemonsets: dict[str, dict[str, Any] | None] = {}
        owner = Owner(meta["name"], meta.get("uid", ""))
        try:
            objects = render(spec, ClusterFacts(self.settings.namespace, owner, self.settings.image_env))
            result = self.applier.sync(objects)
            self.metrics.inc("objects_applied_total", len(result.applied))
            self.metrics.inc("objects_pruned_total", len(result.pruned))
            for obj in objects:
                if obj["kind"] == "DaemonSet":
                    daemonsets[obj["metadata"]["name"]] = result.live.get(object_key(obj))
        except (OperatorError, ApiStatusError) as exc:
            error = str(exc)
            log.error("reconcile of ClusterPolicy %s failed: %s", meta["name"], exc)
            for component in enabled_components(spec):
                daemonsets.setdefault(DAEMONSET_NAMES[component], None)

        findings = []
        if self._custom_config is not None:
            configmap = self.kube.get(object_path("ConfigMap", self.settings.namespace, self._custom_config))
            findings += validate_mig_config(spec, self.settings.namespace, configmap, facts)
        if self._custom_clients is not None:
            configmap = self.kube.get(object_path("ConfigMap", self.settings.namespace, self._custom_clients))
            findings += validate_gpu_clients_config(spec, self.settings.namespace, configmap)
        problem = summarize(findings) if findings else None
        observed = Observed(
            namespace=self.settings.namespace,
            generation=int(meta.get("generation") or 0),
            daemonsets=daemonsets,
            gpu_nodes=gpu_nodes,
            unsupported=unsupported_fields(spec),
            mig_config_problem=problem,
            error=error,
        )
        new_status = compute_status(observed, old_status, self.clock())
        self._write_status(active, old_status, new_status)
        self.metrics.set("clusterpolicy_ready", 1 if new_status["state"] == "ready" else 0)

    def _mark_ignored(self, policy: Mapping[str, Any]) -> None:
        old = policy.get("status") or None
        new = ignored_status(old, self.settings.namespace)
        if (
            old is None
            or old.get("state") != "ignored"
            or old.get("conditions")
            or old.get("namespace") != new.get("namespace")
        ):
            body = {"status": {**new, "conditions": None}}
            self.kube.merge_patch(f"{POLICIES_PATH}/{policy['metadata']['name']}/status", body)
            log.info("ClusterPolicy %s is not the oldest one: ignored", policy["metadata"]["name"])

    def _write_status(self, policy: Mapping[str, Any], old: Mapping[str, Any] | None, new: dict[str, Any]) -> None:
        if not status_differs(old, new):
            return
        name = policy["metadata"]["name"]
        self.kube.merge_patch(f"{POLICIES_PATH}/{name}/status", {"status": new})
        log.info("ClusterPolicy %s state=%s conditions=%s", name, new["state"], new.get("conditions"))
        for reason, message in warning_events(old, new):
            self._post_event(policy, reason, message)

    def _post_event(self, policy: Mapping[str, Any], reason: str, message: str) -> None:
        meta = policy["metadata"]
        now = self.clock()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": self.settings.namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"], "uid": meta.get("uid")},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": "gpu-operator"},
            "reportingComponent": "gpu-operator",
            "reportingInstance": self.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.kube.create(f"/api/v1/namespaces/{self.settings.namespace}/events", event)
        except ApiStatusError as exc:
            log.warning("cannot post Event %s: %s", reason, exc)
