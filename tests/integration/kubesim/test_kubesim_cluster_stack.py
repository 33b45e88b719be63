"""The whole stack in the simulated cluster: this project's operator as a Deployment (a real process), the node
agents it renders (real processes on their nodes' simulated GPUs), NVIDIA's device plugin and GFD emulated. A MIG
config label on the H100 node ends in `success`, GFD's labels and the plugin's capacity follow, and `kubectl logs`
shows the agent's steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubesim.server import KubeSim
from kubesim.testing import ROOT, Tools, cluster_config, wait_for

NS = "gpu-operator"
OPERATOR = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "gpu-operator", "namespace": NS},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "gpu-operator"}},
        "template": {
            "metadata": {"labels": {"app": "gpu-operator"}},
            "spec": {
                "containers": [
                    {
                        "name": "gpu-operator",
                        "image": "ghcr.io/example/gpu-operator:0.1.0",
                        "command": ["gpu-operator"],
                        "args": ["run", "--leader-elect"],
                        "env": [
                            {
                                "name": "OPERATOR_NAMESPACE",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "MIG_MANAGER_IMAGE", "value": "ghcr.io/example/gpu-operator-mig-node-agent:0.1.0"},
                            {"name": "DEVICE_PLUGIN_IMAGE", "value": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"},
                            {"name": "GFD_IMAGE", "value": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"},
                            {"name": "DCGM_EXPORTER_IMAGE", "value": "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3"},
                        ],
                    }
                ]
            },
        },
    },
}
POLICY = {
    "apiVersion": "nvidia.com/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "cluster-policy"},
    "spec": {"mig": {"strategy": "single"}, "migManager": {"enabled": True, "config": {"default": "all-disabled"}}},
}


def labels(tools: Tools, node: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(tools.kubectl("get", "node", node, "-o", "json").stdout)["metadata"]["labels"]
    return result


def test_operator_and_agents_reconfigure_a_node(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with KubeSim(cluster_config("default")) as sim:
        tools = Tools(sim, home)
        tools.kubectl("apply", "-f", str(ROOT / "crds" / "nvidia.com_clusterpolicies.yaml"))
        tools.kubectl("create", "namespace", NS)
        tools.kubectl("apply", "-f", "-", stdin=json.dumps(OPERATOR))
        tools.kubectl("rollout", "status", "deploy/gpu-operator", "-n", NS, "--timeout=60s")
        tools.kubectl("apply", "-f", "-", stdin=json.dumps(POLICY))
        wait_for(
            lambda: labels(tools, "node-h100").get("nvidia.com/mig.config.state") == "success",
            90,
            0.1,
            "the agent on node-h100 settled on all-disabled",
        )
        assert labels(tools, "node-h100")["nvidia.com/mig.capable"] == "true"  # GFD ran
        tools.kubectl("label", "node", "node-h100", "nvidia.com/mig.config=all-1g.10gb", "--overwrite")

        def reconfigured() -> bool:
            got = labels(tools, "node-h100")
            return got.get("nvidia.com/mig.config.state") == "success" and got.get("nvidia.com/gpu.count") == "56"

        wait_for(reconfigured, 90, 0.1, "all-1g.10gb applied and published by GFD")
        got = labels(tools, "node-h100")
        assert got["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
        assert got["nvidia.com/gpu.slices.gi"] == "1"
        assert got["nvidia.com/gpu.deploy.device-plugin"] == "true"  # the gates are back

        def allocatable() -> str | None:
            node = json.loads(tools.kubectl("get", "node", "node-h100", "-o", "json").stdout)
            return node["status"]["allocatable"].get("nvidia.com/gpu")

        wait_for(lambda: allocatable() == "56", 30, 0.1, "the device plugin advertising 56 MIG devices")
        logs = tools.kubectl("logs", "-n", NS, "-l", "app=nvidia-mig-manager", "-c", "nvidia-mig-manager", "--tail=-1")
        assert "all-1g.10gb" in logs.stdout
