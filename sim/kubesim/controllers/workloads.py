"""A minimal workload status writer: marks Deployments, ReplicaSets, DaemonSets, Jobs and Pods ready.

It stands in for the real controllers and kubelet until kubesim runs real pods: every workload converges at once to
the status that `helm install --wait`, `kubectl wait` and `kubectl rollout status` accept.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kubesim.controllers.base import Controller
from kubesim.errors import ApiError
from kubesim.registry import WriteOptions
from kubesim.selectors import selector_from_label_selector_object
from kubesim.store import Event, GroupResource

DEPLOYMENTS: GroupResource = ("apps", "deployments")
REPLICASETS: GroupResource = ("apps", "replicasets")
DAEMONSETS: GroupResource = ("apps", "daemonsets")
JOBS: GroupResource = ("batch", "jobs")
PODS: GroupResource = ("", "pods")
NODES: GroupResource = ("", "nodes")


def _condition(kind: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


class WorkloadStatus(Controller):
    resources = frozenset({DEPLOYMENTS, REPLICASETS, DAEMONSETS, JOBS, PODS, NODES})

    def handle(self, event: Event) -> None:
        if event.type == "DELETED":
            if event.gr == NODES:
                self._all_daemonsets()
            return
        if event.gr == NODES:
            self._all_daemonsets()
            return
        current = self.store.get(event.gr, event.new.namespace, event.new.name)
        if current is None or current.rv != event.new.rv:
            return  # a newer version is queued behind this one
        meta = current.obj["metadata"]
        if meta.get("deletionTimestamp"):
            if event.gr == PODS and meta.get("deletionGracePeriodSeconds"):
                self._kubelet_confirms_deletion(current.obj)
            return
        self._reconcile(event.gr, current.obj)

    def _kubelet_confirms_deletion(self, pod: dict[str, Any]) -> None:
        """What the node's kubelet does once the containers of a gracefully deleted pod stopped: delete it for good."""
        rt = self.registry.any_type(PODS)
        if rt is None:
            return
        with contextlib.suppress(ApiError):
            self.registry.delete(
                rt,
                pod["metadata"].get("namespace", ""),
                pod["metadata"]["name"],
                {"gracePeriodSeconds": 0},
                WriteOptions(),
            )

    def _all_daemonsets(self) -> None:
        for stored in self.store.items(DAEMONSETS):
            self._reconcile(DAEMONSETS, stored.obj)

    def _reconcile(self, gr: GroupResource, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        computed = self._desired(gr, obj, status)
        if computed is None:
            return
        desired = {**status, **computed}  # fields this writer does not own (set through /status) are kept
        if desired == status:
            return
        rt = self.registry.any_type(gr)
        if rt is None:
            return
        body = dict(obj)
        body["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        body["status"] = desired
        self.registry.update(
            rt,
            obj["metadata"].get("namespace", ""),
            obj["metadata"]["name"],
            body,
            WriteOptions(),
            subresource="status",
        )

    def _desired(self, gr: GroupResource, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        spec = obj.get("spec") or {}
        generation = obj["metadata"].get("generation", 1)
        now = self.registry.clock()
        if gr in (DEPLOYMENTS, REPLICASETS):
            replicas = int(spec.get("replicas", 1))
            result: dict[str, Any] = {
                "observedGeneration": generation,
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            if gr == DEPLOYMENTS:
                result["updatedReplicas"] = replicas
                old = {c.get("type"): c for c in status.get("conditions") or []}
                result["conditions"] = [
                    old.get("Available")
                    or _condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.", now),
                    old.get("Progressing")
                    or _condition(
                        "Progressing",
                        "NewReplicaSetAvailable",
                        f'ReplicaSet "{obj["metadata"]["name"]}" has successfully progressed.',
                        now,
                    ),
                ]
            else:
                result["fullyLabeledReplicas"] = replicas
            return result
        if gr == DAEMONSETS:
            desired = self._matching_nodes(spec)
            return {
                "observedGeneration": generation,
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": desired,
                "updatedNumberScheduled": desired,
                "numberAvailable": desired,
                "numberReady": desired,
                "numberMisscheduled": 0,
            }
        if gr == JOBS:
            if spec.get("suspend"):
                return None
            if any(c.get("type") == "Complete" for c in status.get("conditions") or []):
                return None
            completions = int(spec.get("completions", 1) or 1)
            return {
                "startTime": status.get("startTime", now),
                "completionTime": now,
                "succeeded": completions,
                "active": 0,
                "ready": 0,
                "terminating": 0,
                "uncountedTerminatedPods": {},
                "conditions": [
                    {
                        "type": "SuccessCriteriaMet",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Complete",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    },
                ],
            }
        if gr == PODS:
            if status.get("phase") not in (None, "Pending"):
                return None
            owned_by_job = any(r.get("kind") == "Job" for r in obj["metadata"].get("ownerReferences") or [])
            containers = spec.get("containers") or []
            # Without a kubelet, a pod that is not restarted (Jobs, `helm test` hooks, `kubectl run --restart=Never`)
            # is taken to run to completion; other pods keep running.
            if owned_by_job or spec.get("restartPolicy") in ("Never", "OnFailure"):
                done = [
                    {"type": t, "status": "True", "lastTransitionTime": now} for t in ("PodScheduled", "Initialized")
                ]
                done += [
                    {"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
                    for t in ("ContainersReady", "Ready")
                ]
                return {"phase": "Succeeded", "startTime": now, "conditions": done}
            return {
                "phase": "Running",
                "startTime": now,
                "podIP": "10.244.0.10",
                "hostIP": "10.0.0.1",
                "qosClass": status.get("qosClass", "BestEffort"),
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": now}
                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    {
                        "name": c.get("name"),
                        "image": c.get("image", ""),
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in containers
                ],
            }
        return None

    def _matching_nodes(self, spec: dict[str, Any]) -> int:
        template_spec = (spec.get("template") or {}).get("spec") or {}
        node_selector = template_spec.get("nodeSelector") or {}
        selector = selector_from_label_selector_object({"matchLabels": node_selector})
        return sum(1 for n in self.store.items(NODES) if selector.matches(n.obj["metadata"].get("labels")))
