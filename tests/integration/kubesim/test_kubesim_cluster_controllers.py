"""The simulated cluster's controllers with the real kubectl: DaemonSet placement by node labels (the gpu.deploy
pause), rolling updates, Deployments, Jobs, the grace period, and NotReady nodes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.server import KubeSim
from kubesim.testing import Tools, cluster_config, wait_for
from kubesim.topology import ImageRule, NodeSpec, Topology

GATE = "nvidia.com/gpu.deploy.device-plugin"
TOPOLOGY = Topology(
    nodes=(
        NodeSpec("gpu-a", gpus="H100x1", labels={GATE: "true"}),
        NodeSpec("gpu-b", gpus="A30x1", labels={GATE: "true"}),
        NodeSpec("cpu-a", taints=({"key": "dedicated", "value": "infra", "effect": "NoSchedule"},)),
    )
)
PROCESS = ImageRule(("kubesim-test/*",), "process")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[KubeSim]:
    with KubeSim(cluster_config(TOPOLOGY, images=[PROCESS], eviction_timeout=1.0)) as s:
        yield s


@pytest.fixture
def tools(sim: KubeSim, tmp_path: Path) -> Tools:
    home = tmp_path / "home"
    home.mkdir()
    return Tools(sim, home)


def pods(tools: Tools, selector: str) -> list[dict[str, Any]]:
    out = tools.kubectl("get", "pods", "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def running_on(tools: Tools, selector: str) -> dict[str, str]:
    """node -> pod name of the Running, Ready, non-terminating pods."""
    result = {}
    for pod in pods(tools, selector):
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if ready and not pod["metadata"].get("deletionTimestamp"):
            result[pod["spec"]["nodeName"]] = pod["metadata"]["name"]
    return result


DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: plugin, namespace: default}
spec:
  selector: {matchLabels: {app: plugin}}
  template:
    metadata: {labels: {app: plugin}}
    spec:
      nodeSelector: {"nvidia.com/gpu.deploy.device-plugin": "true"}
      containers:
      - {name: main, image: "registry.example.com/some-daemon:1"}
"""


def test_daemonset_follows_the_gate_label_and_rolls(tools: Tools) -> None:
    tools.kubectl("apply", "-f", "-", stdin=DS)
    tools.kubectl("rollout", "status", "ds/plugin", "--timeout=60s")
    assert set(running_on(tools, "app=plugin")) == {"gpu-a", "gpu-b"}  # cpu-a has no gate label
    first = running_on(tools, "app=plugin")

    tools.kubectl("label", "node", "gpu-a", f"{GATE}=paused-for-mig-change", "--overwrite")
    wait_for(lambda: all(p["spec"]["nodeName"] != "gpu-a" for p in pods(tools, "app=plugin")), 30, what="pod gone")
    ds = json.loads(tools.kubectl("get", "ds", "plugin", "-o", "json").stdout)
    assert ds["status"]["desiredNumberScheduled"] == 1
    assert ds["status"]["numberReady"] == 1

    tools.kubectl("label", "node", "gpu-a", f"{GATE}=true", "--overwrite")
    wait_for(lambda: "gpu-a" in running_on(tools, "app=plugin"), 30, what="pod back on gpu-a")
    assert running_on(tools, "app=plugin")["gpu-a"] != first["gpu-a"]
    assert running_on(tools, "app=plugin")["gpu-b"] == first["gpu-b"]  # the other node's pod was never touched

    # a template change rolls every pod
    tools.kubectl(
        "patch", "ds", "plugin", "--type=merge", "-p", '{"spec":{"template":{"metadata":{"annotations":{"v":"2"}}}}}'
    )
    tools.kubectl("rollout", "status", "ds/plugin", "--timeout=60s")
    wait_for(lambda: len(running_on(tools, "app=plugin")) == 2, 30, what="two pods after the roll")
    after = running_on(tools, "app=plugin")
    assert not set(after.values()) & set(first.values()) - {first["gpu-a"]}
    hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in pods(tools, "app=plugin")}
    assert len(hashes) == 1

    # tolerating the taint puts a pod on the tainted node too
    tools.kubectl("label", "node", "cpu-a", f"{GATE}=true")
    tools.kubectl(
        "patch",
        "ds",
        "plugin",
        "--type=merge",
        "-p",
        '{"spec":{"template":{"spec":{"tolerations":[{"key":"dedicated","operator":"Exists"}]}}}}',
    )
    wait_for(lambda: set(running_on(tools, "app=plugin")) == {"gpu-a", "gpu-b", "cpu-a"}, 30, what="three pods")


def deployment(replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "initContainers": [{"name": "setup", "image": "registry.example.com/setup:1"}],
                        "containers": [{"name": "web", "image": "registry.example.com/web:1"}],
                    },
                },
            },
        }
    )


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: task, image: "registry.example.com/task:1"}]
"""


def test_deployment_becomes_available_and_a_job_completes(tools: Tools) -> None:
    tools.kubectl("apply", "-f", "-", stdin=deployment(2))
    tools.kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    tools.kubectl("wait", "--for=condition=Available", "deploy/web", "--timeout=60s")
    rs = json.loads(tools.kubectl("get", "rs", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert len(running_on(tools, "app=web")) == 2  # spread over the two untainted nodes
    init = pods(tools, "app=web")[0]["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["exitCode"] == 0  # the init container ran to completion first
    tools.kubectl("set", "image", "deploy/web", "web=registry.example.com/web:2")
    tools.kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    images = {
        p["spec"]["containers"][0]["image"]
        for p in pods(tools, "app=web")
        if not p["metadata"].get("deletionTimestamp")
    }
    wait_for(
        lambda: {p["spec"]["containers"][0]["image"] for p in pods(tools, "app=web")} == {"registry.example.com/web:2"},
        30,
        what="old pods gone",
    )
    assert "registry.example.com/web:2" in images

    tools.kubectl("apply", "-f", "-", stdin=JOB)
    tools.kubectl("wait", "--for=condition=complete", "job/once", "--timeout=60s")
    job = json.loads(tools.kubectl("get", "job", "once", "-o", "json").stdout)
    assert job["status"]["succeeded"] == 1
    assert pods(tools, "job-name=once")[0]["status"]["phase"] == "Succeeded"

    failing = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fails", "namespace": "default"},
        "spec": {
            "backoffLimit": 1,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "task",
                            "image": "kubesim-test/python",
                            "command": ["python", "-c", "raise SystemExit(1)"],
                        }
                    ],
                }
            },
        },
    }
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(failing))
    tools.kubectl("wait", "--for=condition=failed", "job/fails", "--timeout=60s")
    job = json.loads(tools.kubectl("get", "job", "fails", "-o", "json").stdout)
    assert job["status"]["failed"] == 2  # the first pod and one retry (backoffLimit 1)
    assert {p["status"]["phase"] for p in pods(tools, "job-name=fails")} == {"Failed"}


def test_deletion_honours_the_grace_period(tools: Tools, sim: KubeSim) -> None:
    program = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stubborn", "namespace": "default", "labels": {"app": "stubborn"}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "main", "image": "kubesim-test/python", "command": [sys.executable, "-c", program]}
            ],
        },
    }
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    wait_for(lambda: "up" in tools.kubectl("logs", "stubborn").stdout, 30, what="process started")
    started = time.monotonic()
    tools.kubectl("delete", "pod", "stubborn", "--wait=false")

    def stored() -> dict[str, Any] | None:
        assert sim.cluster is not None
        found = sim.cluster.store.get(("", "pods"), "default", "stubborn")
        return found.obj if found else None

    # the pod is gone only once the kubelet gave up waiting for the process that ignores SIGTERM (2 s, then SIGKILL)
    wait_for(lambda: sim.call(stored) is None, 30, what="the pod gone after the grace period")
    assert time.monotonic() - started >= 2.0

    def versions() -> list[dict[str, Any]]:
        assert sim.cluster is not None
        return [e.new.obj for e in sim.cluster.store.history() if e.new.name == "stubborn"]

    deleting = sim.call(versions)
    graceful = [o for o in deleting if o["metadata"].get("deletionTimestamp")]
    assert graceful and graceful[0]["metadata"]["deletionGracePeriodSeconds"] == 2  # it was Terminating meanwhile


def test_not_ready_node_evicts_pods_without_toleration(tools: Tools, sim: KubeSim) -> None:
    tools.kubectl("apply", "-f", "-", stdin=DS)
    tools.kubectl("apply", "-f", "-", stdin=deployment(1))
    tools.kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    node = next(iter(running_on(tools, "app=web")))
    other = "gpu-b" if node == "gpu-a" else "gpu-a"
    sim.set_node_ready(node, False)
    wait_for(
        lambda: set(running_on(tools, "app=web")) == {other}, 30, what="the Deployment's pod replaced on the Ready node"
    )
    got = json.loads(tools.kubectl("get", "node", node, "-o", "json").stdout)
    assert {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in got["spec"]["taints"]
    daemon = [p for p in pods(tools, "app=plugin") if p["spec"]["nodeName"] == node]
    assert daemon and not daemon[0]["metadata"].get("deletionTimestamp")  # daemon pods tolerate not-ready
    sim.set_node_ready(node, True)
    wait_for(
        lambda: "taints" not in json.loads(tools.kubectl("get", "node", node, "-o", "json").stdout)["spec"],
        30,
        what="taints removed",
    )
