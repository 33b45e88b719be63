"""The workload controllers and the scheduler: DaemonSet, Deployment, ReplicaSet, Job, pod scheduling, and the node
lifecycle controller (NotReady taints, eviction after the toleration period)."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubesim.controllers import scheduling
from kubesim.controllers.reconciler import (
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    NODES,
    PODS,
    REPLICASETS,
    Reconciler,
    active,
    condition,
    owner_ref,
    phase,
    pod_ready,
    terminating,
)
from kubesim.registry import Registry
from kubesim.store import Event, Stored


def _owner_keys(event: Event, kind: str) -> list[Hashable]:
    keys: list[Hashable] = []
    for obj in (event.new.obj, event.old.obj if event.old else None):
        if obj is None:
            continue
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == kind:
                keys.append((event.new.namespace, str(ref.get("name"))))
    return keys


def _int_or_percent(value: Any, total: int, default: int, round_up: bool) -> int:
    if value is None:
        return default
    text = str(value)
    if text.endswith("%"):
        try:
            pct = int(text[:-1])
        except ValueError:
            return default
        scaled = total * pct / 100
        return int(-(-scaled // 1)) if round_up else int(scaled)
    try:
        return int(text)
    except ValueError:
        return default


def _pod_from_template(
    template: dict[str, Any], owner: dict[str, Any], api_version: str, kind: str, extra_labels: dict[str, str]
) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    pod_meta: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace", ""),
        "labels": {**(meta.get("labels") or {}), **extra_labels},
        "ownerReferences": [owner_ref(owner, api_version, kind)],
    }
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


# ---------------------------------------------------------------------------------------------------------------------


class DaemonSetController(Reconciler):
    """One pod per eligible node; pods go when a node stops matching (the `gpu.deploy.*` pause); rolling update."""

    pace = 5.0
    watches = frozenset({DAEMONSETS, PODS, NODES})
    owned = PODS

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.gr == DAEMONSETS:
            return [(event.new.namespace, event.new.name)]
        if event.gr == PODS:
            return _owner_keys(event, "DaemonSet")
        if event.old is not None and event.type == "MODIFIED":
            old, new = event.old.obj, event.new.obj
            if (old["metadata"].get("labels"), old.get("spec")) == (new["metadata"].get("labels"), new.get("spec")):
                return []  # status-only node writes (heartbeats, capacity) change no daemon's placement
        return [(s.namespace, s.name) for s in self.store.items(DAEMONSETS)]

    def reconcile(self, key: Any) -> None:
        namespace, name = key
        current = self.store.get(DAEMONSETS, namespace, name)
        if current is None or terminating(current.obj):
            return
        ds = current.obj
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        tspec = template.get("spec") or {}
        revision = scheduling.template_hash(template)
        generation = int(ds["metadata"].get("generation", 1))
        pods = self.owned_by(str(ds["metadata"].get("uid")))
        by_node: dict[str, list[dict[str, Any]]] = {}
        for owned in pods:
            by_node.setdefault(str((owned.obj.get("spec") or {}).get("nodeName", "")), []).append(owned.obj)
        nodes = {n.name: n.obj for n in self.store.items(NODES)}
        desired = current_n = misscheduled = ready = updated = available = 0
        old_pods: list[dict[str, Any]] = []
        unavailable = 0
        for node_name, node in nodes.items():
            node_pods = by_node.pop(node_name, [])
            for failed in node_pods:
                if phase(failed) == "Failed" and not terminating(failed):
                    self.delete(PODS, namespace, failed["metadata"]["name"])  # failed daemon pods are replaced
            alive = sorted(
                (p for p in node_pods if active(p)), key=lambda p: str(p["metadata"].get("creationTimestamp", ""))
            )
            should_run, should_continue = scheduling.daemon_placement(tspec, node)
            if alive and not should_continue:
                for pod in alive:
                    self.delete(PODS, namespace, pod["metadata"]["name"])
                misscheduled += 1
                continue
            if not alive:
                if should_run:
                    desired += 1
                    unavailable += 1
                    self._create_pod(ds, template, node_name, revision, generation)
                continue
            for extra in alive[1:]:
                self.delete(PODS, namespace, extra["metadata"]["name"])
            pod = alive[0]
            if not should_run and not should_continue:
                misscheduled += 1
                continue
            desired += 1
            current_n += 1
            is_ready = pod_ready(pod)
            ready += is_ready
            available += is_ready
            if not is_ready:
                unavailable += 1
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == revision:
                updated += 1
            else:
                old_pods.append(pod)
        for orphans in by_node.values():  # pods on nodes that are gone
            for pod in orphans:
                if not terminating(pod):
                    self.delete(PODS, namespace, pod["metadata"]["name"], {"gracePeriodSeconds": 0})
        strategy = spec.get("updateStrategy") or {}
        if old_pods and strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = strategy.get("rollingUpdate") or {}
            max_unavailable = max(_int_or_percent(rolling.get("maxUnavailable"), desired, 1, True), 1)
            budget = max_unavailable - unavailable
            # old pods that are not ready anyway go first and cost nothing
            for pod in sorted(old_pods, key=pod_ready):
                if not pod_ready(pod):
                    self.delete(PODS, namespace, pod["metadata"]["name"])
                elif budget > 0:
                    self.delete(PODS, namespace, pod["metadata"]["name"])
                    budget -= 1
        status = dict(ds.get("status") or {})
        status.update(
            observedGeneration=generation,
            desiredNumberScheduled=desired,
            currentNumberScheduled=current_n,
            numberMisscheduled=misscheduled,
            numberReady=ready,
            updatedNumberScheduled=updated,
            numberAvailable=available,
            numberUnavailable=max(desired - available, 0),
        )
        latest = self.store.get(DAEMONSETS, namespace, name)
        if latest is not None:
            self.write_status(DAEMONSETS, latest, status)

    def _create_pod(
        self, ds: dict[str, Any], template: dict[str, Any], node: str, revision: str, generation: int
    ) -> None:
        pod = _pod_from_template(
            template,
            ds,
            "apps/v1",
            "DaemonSet",
            {"controller-revision-hash": revision, "pod-template-generation": str(generation)},
        )
        pod["spec"]["nodeName"] = node
        pod["spec"]["tolerations"] = scheduling.with_daemon_tolerations(pod["spec"].get("tolerations") or [])
        self.create(PODS, pod["metadata"]["namespace"], pod)


# ---------------------------------------------------------------------------------------------------------------------


class ReplicaSetController(Reconciler):
    pace = 5.0
    watches = frozenset({REPLICASETS, PODS})
    owned = PODS

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.gr == REPLICASETS:
            return [(event.new.namespace, event.new.name)]
        return _owner_keys(event, "ReplicaSet")

    def reconcile(self, key: Any) -> None:
        namespace, name = key
        current = self.store.get(REPLICASETS, namespace, name)
        if current is None or terminating(current.obj):
            return
        rs = current.obj
        spec = rs.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        pods = [p.obj for p in self.owned_by(str(rs["metadata"].get("uid")))]
        alive = [p for p in pods if active(p)]
        if len(alive) < replicas:
            for _ in range(replicas - len(alive)):
                pod = _pod_from_template(spec.get("template") or {}, rs, "apps/v1", "ReplicaSet", {})
                self.create(PODS, namespace, pod)
        elif len(alive) > replicas:
            # unscheduled, then not ready, then the newest go first
            victims = sorted(
                alive,
                key=lambda p: (
                    bool((p.get("spec") or {}).get("nodeName")),
                    pod_ready(p),
                    str(p["metadata"].get("creationTimestamp", "")),
                ),
            )
            for pod in victims[: len(alive) - replicas]:
                self.delete(PODS, namespace, pod["metadata"]["name"])
            alive = victims[len(alive) - replicas :]
        ready = sum(1 for p in alive if pod_ready(p))
        status = {
            "replicas": len(alive),
            "fullyLabeledReplicas": len(alive),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": int(rs["metadata"].get("generation", 1)),
        }
        latest = self.store.get(REPLICASETS, namespace, name)
        if latest is not None:
            self.write_status(REPLICASETS, latest, status)


# ---------------------------------------------------------------------------------------------------------------------

REVISION = "deployment.kubernetes.io/revision"


class DeploymentController(Reconciler):
    pace = 5.0
    watches = frozenset({DEPLOYMENTS, REPLICASETS})
    owned = REPLICASETS

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.gr == DEPLOYMENTS:
            return [(event.new.namespace, event.new.name)]
        return _owner_keys(event, "Deployment")

    def reconcile(self, key: Any) -> None:
        namespace, name = key
        current = self.store.get(DEPLOYMENTS, namespace, name)
        if current is None or terminating(current.obj):
            return
        d = current.obj
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        pod_hash = scheduling.template_hash(template)
        owned = [s.obj for s in self.owned_by(str(d["metadata"].get("uid")))]
        new_rs = next(
            (r for r in owned if (r["metadata"].get("labels") or {}).get("pod-template-hash") == pod_hash), None
        )
        olds = [r for r in owned if r is not new_rs]
        strategy = spec.get("strategy") or {}
        recreate = strategy.get("type") == "Recreate"
        old_running = sum(int((r.get("status") or {}).get("replicas", 0)) for r in olds)
        if not spec.get("paused"):
            if new_rs is None:
                revision = 1 + max(
                    (int((r["metadata"].get("annotations") or {}).get(REVISION, 0)) for r in owned), default=0
                )
                new_rs = self._create_rs(d, template, pod_hash, 0 if recreate and old_running else replicas, revision)
            if new_rs is not None:
                new_available = int((new_rs.get("status") or {}).get("availableReplicas", 0))
                if recreate:
                    for r in olds:
                        self._scale(r, 0)
                    if old_running == 0:
                        self._scale(new_rs, replicas)
                else:
                    self._scale(new_rs, replicas)
                    allowed_old = max(replicas - new_available, 0)
                    for r in sorted(olds, key=lambda r: str(r["metadata"].get("creationTimestamp", "")), reverse=True):
                        keep = min(int((r.get("spec") or {}).get("replicas", 1)), allowed_old)
                        self._scale(r, keep)
                        allowed_old -= keep
        rs_now = [s.obj for s in self.owned_by(str(d["metadata"].get("uid")))]
        new_now = next(
            (r for r in rs_now if (r["metadata"].get("labels") or {}).get("pod-template-hash") == pod_hash), None
        )

        def total(key: str, items: list[dict[str, Any]]) -> int:
            return sum(int((r.get("status") or {}).get(key, 0)) for r in items)

        updated = total("replicas", [new_now]) if new_now else 0
        available = total("availableReplicas", rs_now)
        have = total("replicas", rs_now)
        rolling = strategy.get("rollingUpdate") or {}
        max_unavailable = 0 if recreate else _int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, 0, False)
        now = self.registry.clock()
        old_conditions = (d.get("status") or {}).get("conditions") or []
        if available >= replicas - max_unavailable:
            avail = condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
                old_conditions,
            )
        else:
            avail = condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
                old_conditions,
            )
        rs_name = new_now["metadata"]["name"] if new_now else name
        complete = (
            new_now is not None and updated == replicas == have and total("availableReplicas", [new_now]) == replicas
        )
        if complete:
            progress = condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                now,
                old_conditions,
            )
        else:
            progress = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                now,
                old_conditions,
            )
        status: dict[str, Any] = {
            "observedGeneration": int(d["metadata"].get("generation", 1)),
            "replicas": have,
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas", rs_now),
            "availableReplicas": available,
            "conditions": [avail, progress],
        }
        if replicas - available > 0:
            status["unavailableReplicas"] = replicas - available
        latest = self.store.get(DEPLOYMENTS, namespace, name)
        if latest is not None:
            self.write_status(DEPLOYMENTS, latest, status)

    def _create_rs(
        self, d: dict[str, Any], template: dict[str, Any], pod_hash: str, replicas: int, revision: int
    ) -> dict[str, Any] | None:
        tpl = copy.deepcopy(template)
        tpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy((d.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        rs: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{pod_hash}",
                "namespace": d["metadata"].get("namespace", ""),
                "labels": dict(tpl["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str((d.get("spec") or {}).get("replicas", 1)),
                    "deployment.kubernetes.io/max-replicas": str((d.get("spec") or {}).get("replicas", 1)),
                },
                "ownerReferences": [owner_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": tpl},
        }
        stored = self.create(REPLICASETS, rs["metadata"]["namespace"], rs)
        return stored.obj if stored else None

    def _scale(self, rs: dict[str, Any], replicas: int) -> None:
        current = self.store.get(REPLICASETS, rs["metadata"].get("namespace", ""), rs["metadata"]["name"])
        if current is None or int((current.obj.get("spec") or {}).get("replicas", 1)) == replicas:
            return
        obj = current.copy()
        obj["metadata"].pop("resourceVersion", None)
        obj["spec"]["replicas"] = replicas
        self.write(REPLICASETS, obj)


# ---------------------------------------------------------------------------------------------------------------------


class JobController(Reconciler):
    """Runs pods to completion (completions, parallelism, backoffLimit): what Helm hooks and `--wait-for-jobs` need."""

    pace = 5.0
    watches = frozenset({JOBS, PODS})
    owned = PODS

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.gr == JOBS:
            return [(event.new.namespace, event.new.name)]
        return _owner_keys(event, "Job")

    def reconcile(self, key: Any) -> None:
        namespace, name = key
        current = self.store.get(JOBS, namespace, name)
        if current is None or terminating(current.obj):
            return
        job = current.obj
        spec = job.get("spec") or {}
        status = dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)
        pods = [p.obj for p in self.owned_by(str(job["metadata"].get("uid")))]
        succeeded = sum(1 for p in pods if phase(p) == "Succeeded")
        failed = sum(1 for p in pods if phase(p) == "Failed")
        running = [p for p in pods if active(p)]
        completions = int(spec.get("completions", 1) or 1)
        parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1)
        backoff_limit = int(spec.get("backoffLimit", 6))
        now = self.registry.clock()
        if not finished and not spec.get("suspend"):
            status.setdefault("startTime", now)
            if succeeded >= completions:
                for pod in running:
                    self.delete(PODS, namespace, pod["metadata"]["name"])
                status["completionTime"] = now
                for kind in ("SuccessCriteriaMet", "Complete"):
                    conditions.append(
                        {
                            "type": kind,
                            "status": "True",
                            "reason": "CompletionsReached",
                            "message": "Reached expected number of succeeded pods",
                            "lastProbeTime": now,
                            "lastTransitionTime": now,
                        }
                    )
            elif failed > backoff_limit:
                for pod in running:
                    self.delete(PODS, namespace, pod["metadata"]["name"])
                for kind in ("FailureTarget", "Failed"):
                    conditions.append(
                        {
                            "type": kind,
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                            "lastProbeTime": now,
                            "lastTransitionTime": now,
                        }
                    )
            else:
                want = min(parallelism, completions - succeeded) - len(running)
                labels = {
                    "batch.kubernetes.io/controller-uid": str(job["metadata"].get("uid")),
                    "batch.kubernetes.io/job-name": name,
                    "controller-uid": str(job["metadata"].get("uid")),
                    "job-name": name,
                }
                for _ in range(max(want, 0)):
                    pod = _pod_from_template(spec.get("template") or {}, job, "batch/v1", "Job", labels)
                    self.create(PODS, namespace, pod)
        status.update(
            active=len([p for p in pods if active(p)]),
            ready=sum(1 for p in running if pod_ready(p)),
            succeeded=succeeded,
            failed=failed,
            terminating=sum(1 for p in pods if terminating(p)),
            uncountedTerminatedPods={},
        )
        if conditions:
            status["conditions"] = conditions
        latest = self.store.get(JOBS, namespace, name)
        if latest is not None:
            self.write_status(JOBS, latest, status)


# ---------------------------------------------------------------------------------------------------------------------


class Scheduler(Reconciler):
    """Binds pending pods to feasible Ready nodes (selector, affinity, taints, extended resources), least loaded first;
    an unfit pod gets `PodScheduled=False/Unschedulable` and is retried when nodes change."""

    watches = frozenset({PODS, NODES})

    def __init__(self, registry: Registry) -> None:
        self._pending: set[tuple[str, str]] = set()  # unscheduled, live pods (kept by the listener)
        self._bound: dict[tuple[str, str], tuple[str, dict[str, int]]] = {}  # live bound pods: node, resources
        super().__init__(registry)
        for stored in self.store.items(PODS):
            self._track(stored, deleted=False)

    def _track(self, stored: Stored, deleted: bool) -> None:
        key = (stored.namespace, stored.name)
        pod = stored.obj
        node = (pod.get("spec") or {}).get("nodeName")
        live = not deleted and not terminating(pod) and active(pod)
        if live and not node:
            self._pending.add(key)
        else:
            self._pending.discard(key)
        if live and node:
            self._bound[key] = (str(node), scheduling.requested_extended(pod.get("spec") or {}))
        else:
            self._bound.pop(key, None)

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if event.gr == PODS:
            was_bound = (event.new.namespace, event.new.name) in self._bound
            self._track(event.new, deleted=event.type == "DELETED")
            if (event.new.namespace, event.new.name) in self._pending:
                return [(event.new.namespace, event.new.name)]
            still_bound = (event.new.namespace, event.new.name) in self._bound
            if was_bound and not still_bound:
                return sorted(self._pending)  # freed resources
            return []
        return sorted(self._pending)

    def reconcile(self, key: Any) -> None:
        namespace, name = key
        current = self.store.get(PODS, namespace, name)
        if current is None or terminating(current.obj) or (current.obj.get("spec") or {}).get("nodeName"):
            return
        pod = current.obj
        pod_spec = pod.get("spec") or {}
        nodes = [n.obj for n in self.store.items(NODES)]
        used: dict[str, dict[str, int]] = {}
        load: dict[str, int] = {}
        for bound_node, requested in self._bound.values():
            load[bound_node] = load.get(bound_node, 0) + 1
            bucket = used.setdefault(bound_node, {})
            for res, count in requested.items():
                bucket[res] = bucket.get(res, 0) + count
        reasons: dict[str, int] = {}
        fits = []
        for node in nodes:
            node_name = node["metadata"]["name"]
            if pod_spec.get("nodeSelector", {}).get("kubernetes.io/hostname") not in (None, node_name):
                reason = "node(s) didn't match Pod's node affinity/selector"
            else:
                reason = scheduling.schedulable_reason(pod_spec, node, used.get(node_name))
            if not reason and not scheduling.node_ready(node):
                reason = f"node(s) had untolerated taint {{{scheduling.NOT_READY_TAINT}: }}"
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
            else:
                fits.append(node_name)
        if not fits:
            detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
            message = (
                f"0/{len(nodes)} nodes are available: {detail}." if nodes else "no nodes available to schedule pods"
            )
            status = dict(pod.get("status") or {})
            status["phase"] = "Pending"
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": (status.get("conditions") or [{}])[0].get("lastTransitionTime")
                    or self.registry.clock(),
                }
            ]
            self.write_status(PODS, current, status)
            return
        chosen = min(fits, key=lambda n: (load.get(n, 0), n))
        obj = current.copy()
        obj["metadata"].pop("resourceVersion", None)
        obj["spec"]["nodeName"] = chosen
        stored = self.write(PODS, obj)
        if stored is not None:
            status = dict(stored.obj.get("status") or {})
            status["phase"] = "Pending"
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": self.registry.clock(),
                }
            ]
            self.write_status(PODS, stored, status)


# ---------------------------------------------------------------------------------------------------------------------


def _seconds_since(timestamp: str) -> float:
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return 0.0
    return (datetime.now(UTC) - then).total_seconds()


class NodeLifecycleController(Reconciler):
    """A node whose Ready condition is not True gets the `node.kubernetes.io/not-ready` (or `unreachable` for
    Unknown) NoSchedule and NoExecute taints, its pods lose `Ready`, and pods that do not tolerate the NoExecute taint
    are evicted once their toleration period ends (`eviction_timeout`, NVIDIA's DefaultTolerationSeconds 300, for pods
    without a matching toleration). The taints go when the node is Ready again."""

    watches = frozenset({NODES})

    def __init__(self, registry: Registry, eviction_timeout: float = 300.0) -> None:
        super().__init__(registry)
        self.eviction_timeout = eviction_timeout

    def reconcile(self, key: Any) -> None:
        _, name = key
        current = self.store.get(NODES, "", name)
        if current is None:
            return
        node = current.obj
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is None:
            return  # a node without a kubelet (created through the API): left alone
        status = ready.get("status")
        taints = [
            t
            for t in scheduling.node_taints(node)
            if t.get("key") not in (scheduling.NOT_READY_TAINT, scheduling.UNREACHABLE_TAINT)
        ]
        if status != "True":
            key_name = scheduling.UNREACHABLE_TAINT if status == "Unknown" else scheduling.NOT_READY_TAINT
            now = self.registry.clock()
            old = {(t.get("key"), t.get("effect")): t for t in scheduling.node_taints(node)}
            for effect in ("NoSchedule", "NoExecute"):
                taint: dict[str, Any] = {"key": key_name, "effect": effect}
                if effect == "NoExecute":
                    taint["timeAdded"] = (old.get((key_name, effect)) or {}).get("timeAdded", now)
                taints.append(taint)
        if taints != scheduling.node_taints(node):
            obj = current.copy()
            obj["metadata"].pop("resourceVersion", None)
            if taints:
                obj.setdefault("spec", {})["taints"] = taints
            else:
                obj.setdefault("spec", {}).pop("taints", None)
            stored = self.write(NODES, obj)
            if stored is not None:
                node = stored.obj
        if status != "True":
            self._handle_pods(node)

    def _handle_pods(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        noexec = [t for t in scheduling.node_taints(node) if t.get("effect") == "NoExecute"]
        earliest: float | None = None
        for stored in self.store.items(PODS):
            pod = stored.obj
            if (pod.get("spec") or {}).get("nodeName") != name or not active(pod):
                continue
            # the pod is not Ready while its node is not (the node lifecycle controller's MarkPodsNotReady)
            status = dict(pod.get("status") or {})
            conds = [dict(c) for c in status.get("conditions") or []]
            changed = False
            for cond in conds:
                if cond.get("type") in ("Ready", "ContainersReady") and cond.get("status") == "True":
                    cond.update(status="False", lastTransitionTime=self.registry.clock())
                    changed = True
            if changed:
                status["conditions"] = conds
                self.write_status(PODS, stored, status)
            wait = self._toleration_left(pod, noexec)
            if wait is None:
                continue
            if wait <= 0:
                self.delete(PODS, stored.namespace, stored.name)
            else:
                earliest = wait if earliest is None else min(earliest, wait)
        if earliest is not None:
            self.enqueue_after(("", name), earliest + 0.05)

    def _toleration_left(self, pod: dict[str, Any], taints: list[Mapping[str, Any]]) -> float | None:
        """Seconds until the pod must go (<= 0: now), or None when it tolerates every NoExecute taint forever."""
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        left: float | None = None
        for taint in taints:
            matching = [t for t in tolerations if scheduling.tolerates([t], taint)]
            if matching:
                limits = [t.get("tolerationSeconds") for t in matching]
                if any(v is None for v in limits):
                    continue
                allowed = float(max(int(v) for v in limits))
            else:
                allowed = self.eviction_timeout
            remaining = allowed - _seconds_since(str(taint.get("timeAdded", "")))
            left = remaining if left is None else min(left, remaining)
        return left
