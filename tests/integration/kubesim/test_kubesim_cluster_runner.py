"""The process runner with a small test program: paths under mountPaths translated, a ConfigMap edit reaching the
running process, `kubectl logs` showing its output, restart with a restart count after it exits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.server import Config, KubeSim
from kubesim.testing import Tools, cluster_config, wait_for
from kubesim.topology import ImageRule, NodeSpec, Topology

PROGRAM = """
import os, sys, time, pathlib
settings = pathlib.Path(os.environ["SETTINGS"])
data = pathlib.Path(sys.argv[1].split("=", 1)[1])
print("settings-path", settings, flush=True)
print("pod", os.environ["POD_NAME"], "on", os.environ["NODE_NAME"], "ns", os.environ["POD_NAMESPACE"], flush=True)
print("kubeconfig", os.path.exists(os.environ["KUBECONFIG"]), flush=True)
data.mkdir(parents=True, exist_ok=True)
(data / "written-by-pod").write_text("hello")
last = None
while True:
    text = settings.read_text().strip()
    if text != last:
        print("settings:", text, flush=True)
        last = text
    if text == "exit":
        sys.exit(3)
    time.sleep(0.05)
"""

MANIFESTS = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app", "namespace": "default"},
            "data": {"prog.py": PROGRAM, "settings.txt": "one"},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "prog", "namespace": "default", "labels": {"app": "prog"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "example.com/tests/prog:1",
                        "command": ["python", "/app/prog.py"],
                        "args": ["--data=/data/out"],
                        "env": [
                            {"name": "SETTINGS", "value": "/app/settings.txt"},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        ],
                        "volumeMounts": [
                            {"name": "app", "mountPath": "/app"},
                            {"name": "data", "mountPath": "/data"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "app", "configMap": {"name": "app"}},
                    {"name": "data", "hostPath": {"path": "/var/lib/prog", "type": "DirectoryOrCreate"}},
                ],
            },
        },
    ],
}


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    topology = Topology(nodes=(NodeSpec("node-1"),))
    with KubeSim(cluster_config(topology, images=[ImageRule(("example.com/tests/*",), "process")])) as s:
        yield s


def test_process_runner(sim: KubeSim, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    tools = Tools(sim, home)
    tools.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(i) for i in MANIFESTS["items"]))

    def logs() -> str:
        return tools.kubectl("logs", "-l", "app=prog", "-c", "main", "--tail=-1", check=False).stdout

    wait_for(lambda: "settings: one" in logs(), 60, what="the program's first output")
    text = logs()
    assert "pod prog on node-1 ns default" in text  # downward API
    assert "kubeconfig True" in text
    # the mountPath in env was translated to the pod's volume folder, which holds the ConfigMap's key
    settings_path = next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("settings-path"))
    assert not settings_path.startswith("/app/") and Path(settings_path).read_text() == "one"
    # the argument's hostPath landed in the node's simulated root
    assert (sim.node_dir("node-1") / "root" / "var/lib/prog/out/written-by-pod").read_text() == "hello"

    tools.kubectl("patch", "configmap", "app", "--type=merge", "-p", '{"data":{"settings.txt":"two"}}')
    wait_for(lambda: "settings: two" in logs(), 30, what="the ConfigMap edit seen by the running process")

    tools.kubectl("patch", "configmap", "app", "--type=merge", "-p", '{"data":{"settings.txt":"exit"}}')

    def restarted() -> dict[str, object] | None:
        pod = json.loads(tools.kubectl("get", "pod", "prog", "-o", "json").stdout)
        status = pod["status"]["containerStatuses"][0]
        return status if status["restartCount"] >= 1 else None

    status = wait_for(restarted, 30, what="a restart after the process exited")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    tools.kubectl("patch", "configmap", "app", "--type=merge", "-p", '{"data":{"settings.txt":"three"}}')
    wait_for(lambda: "settings: three" in logs(), 30, what="the restarted process running")
    assert "settings: one" not in logs()  # `kubectl logs` shows the current container, --previous the one that exited
    previous = tools.kubectl("logs", "prog", "-c", "main", "--previous").stdout
    assert "settings: exit" in previous and "settings: three" not in previous
    pod = json.loads(tools.kubectl("get", "pod", "prog", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Running"


def test_logs_of_a_container_that_has_not_started(tmp_path: Path) -> None:
    with KubeSim(Config(workload_status=False)) as sim:
        tools = Tools(sim, tmp_path)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "slow", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "example.com/x:1"}]},
        }
        tools.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        status = {
            "phase": "Pending",
            "containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "ContainerCreating"}}}],
        }
        tools.kubectl(
            "patch", "pod", "slow", "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
        )
        got = tools.kubectl("logs", "slow", check=False)
        assert got.returncode != 0
        assert 'container "main" in pod "slow" is waiting to start: ContainerCreating' in got.stderr
        got = tools.kubectl("logs", "slow", "--previous", check=False)
        assert 'previous terminated container "main" in pod "slow" not found' in got.stderr


def test_a_pod_waits_for_its_configmap(sim: KubeSim, tmp_path: Path) -> None:
    tools = Tools(sim, tmp_path)
    pod = MANIFESTS["items"][1]
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(pod))  # its ConfigMap `app` does not exist yet

    def waiting() -> dict[str, Any] | None:
        got = json.loads(tools.kubectl("get", "pod", "prog", "-o", "json").stdout)
        statuses = got["status"].get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting")

    state = wait_for(waiting, 30, what="the container held back")
    assert state["reason"] == "ContainerCreating"
    assert 'configmap "app" not found' in state["message"]
    assert json.loads(tools.kubectl("get", "pod", "prog", "-o", "json").stdout)["status"]["phase"] == "Pending"
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(MANIFESTS["items"][0]))
    wait_for(
        lambda: "settings: one" in tools.kubectl("logs", "prog", "-c", "main", check=False).stdout,
        30,
        what="the program started once its ConfigMap exists",
    )
    got = json.loads(tools.kubectl("get", "pod", "prog", "-o", "json").stdout)
    assert got["status"]["containerStatuses"][0]["restartCount"] == 0


def test_kill_container_crashes_the_process_and_the_kubelet_restarts_it(sim: KubeSim, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    tools = Tools(sim, home)
    tools.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(i) for i in MANIFESTS["items"]))

    def status() -> dict[str, Any]:
        pod = json.loads(tools.kubectl("get", "pod", "prog", "-o", "json").stdout)
        return dict(pod["status"]["containerStatuses"][0])

    wait_for(lambda: "running" in status()["state"], 60, what="the program running")
    assert sim.kill_container("default", "prog", "other") == 0  # no such container
    assert sim.kill_container("default", "missing") == 0  # no such pod
    assert sim.kill_container("default", "prog", "main") == 1

    def restarted() -> dict[str, Any] | None:
        now = status()
        return now if now["restartCount"] >= 1 and "running" in now["state"] else None

    after = wait_for(restarted, 30, what="the killed container restarted")
    assert after["lastState"]["terminated"]["exitCode"] == 137  # 128 + SIGKILL, as container runtimes report
