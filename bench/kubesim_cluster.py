"""kubesim's simulated cluster: start-up of the default topology and of a 200-node topology (every node Ready), and
the time from a `nvidia.com/gpu.deploy.*` gate change to the DaemonSet pod being gone, and back (Running and Ready).

Run: .venv/bin/python bench/kubesim_cluster.py   (writes bench/results/kubesim_cluster.json)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "sim"), str(ROOT / "node-agent")]

from kubernetes import client  # noqa: E402

from kubesim.server import Config, KubeSim  # noqa: E402
from kubesim.testing import kube_client, wait_for  # noqa: E402
from kubesim.topology import NodeSpec, Topology  # noqa: E402

GATE = "nvidia.com/gpu.deploy.device-plugin"
ROUNDS = 10


def all_ready(sim: KubeSim, count: int) -> bool:
    def check() -> bool:
        assert sim.cluster is not None
        nodes = sim.cluster.store.items(("", "nodes"))
        return len(nodes) == count and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n.obj["status"]["conditions"]) for n in nodes
        )

    return sim.call(check)


def startup(topology: Any, count: int) -> float:
    started = time.perf_counter()
    sim = KubeSim(Config(topology=topology)).start()
    try:
        wait_for(lambda: all_ready(sim, count), 300, interval=0.01, what="nodes Ready")
        return time.perf_counter() - started
    finally:
        sim.stop()


def daemon_pod(sim: KubeSim, node: str) -> str:
    """The name of the Running and Ready daemon pod on the node ("" if none; "terminating" while one goes)."""

    def look() -> str:
        assert sim.cluster is not None
        for pod in sim.cluster.store.items(("", "pods"), "default"):
            if pod.obj["spec"].get("nodeName") != node:
                continue
            if pod.obj["metadata"].get("deletionTimestamp"):
                return "terminating"
            conds = pod.obj.get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                return str(pod.name)
        return ""

    return sim.call(look)


def gate_round_trip() -> dict[str, Any]:
    with KubeSim(Config(topology="default")) as sim:
        api = kube_client(sim)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        apps.create_namespaced_daemon_set(
            "default",
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "nvidia-device-plugin-daemonset"},
                "spec": {
                    "selector": {"matchLabels": {"app": "nvidia-device-plugin-daemonset"}},
                    "template": {
                        "metadata": {"labels": {"app": "nvidia-device-plugin-daemonset"}},
                        "spec": {
                            "nodeSelector": {GATE: "true"},
                            "containers": [
                                {
                                    "name": "nvidia-device-plugin",
                                    "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
                                    "command": ["nvidia-device-plugin"],
                                    "env": [{"name": "MIG_STRATEGY", "value": "single"}],
                                }
                            ],
                        },
                    },
                },
            },
        )
        gone, back = [], []
        core.patch_node("node-h100", {"metadata": {"labels": {GATE: "true"}}})
        wait_for(lambda: daemon_pod(sim, "node-h100") not in ("", "terminating"), 60, 0.002, "first pod")
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            core.patch_node("node-h100", {"metadata": {"labels": {GATE: "paused-for-mig-change"}}})
            wait_for(lambda: daemon_pod(sim, "node-h100") == "", 60, 0.002, "pod gone")
            t1 = time.perf_counter()
            core.patch_node("node-h100", {"metadata": {"labels": {GATE: "true"}}})
            wait_for(lambda: daemon_pod(sim, "node-h100") not in ("", "terminating"), 60, 0.002, "pod back")
            t2 = time.perf_counter()
            gone.append(t1 - t0)
            back.append(t2 - t1)
        return {
            "rounds": ROUNDS,
            "pause_to_pod_gone_ms": {
                "median": round(statistics.median(gone) * 1000, 1),
                "max": round(max(gone) * 1000, 1),
            },
            "restore_to_pod_ready_ms": {
                "median": round(statistics.median(back) * 1000, 1),
                "max": round(max(back) * 1000, 1),
            },
        }


def main() -> int:
    load = os.getloadavg()[0]
    default_s = startup("default", 4)
    big = Topology(nodes=tuple(NodeSpec(f"gpu-{i}", gpus="A100-80GBx8") for i in range(200)))
    big_s = startup(big, 200)
    trip = gate_round_trip()
    result = {
        "benchmark": "kubesim_cluster",
        "command": ".venv/bin/python bench/kubesim_cluster.py",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_start": round(load, 2),
        },
        "startup_seconds": {"default_topology_4_nodes": round(default_s, 3), "topology_200_nodes": round(big_s, 3)},
        "gate_label_round_trip": trip,
    }
    out = ROOT / "bench" / "results" / "kubesim_cluster.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
