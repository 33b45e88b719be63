"""Operator benchmark (issue 7, acceptance 4): 1,000 simulated GPU nodes against kubesim.

Run from the repository root: `.venv/bin/python bench/operator.py [--nodes 1000]`. Writes
`bench/results/operator.json` and prints a summary. The operator runs as a real process (`python -m gpu_operator run`)
against an in-process kubesim; nodes are created through the kubernetes client, as a cluster's nodes would register.

Measured:
- time from the first node's creation until every node carries its labels (`gpu.present`, the deploy labels,
  `gpu.deploy.mig-manager`, `mig.config=all-disabled`) and the ClusterPolicy is ready with reason `Reconciled` for all
  GPU nodes (target under 60 s);
- the operator's total write requests until then (its `writes_total` metric) and kubesim's resourceVersion delta;
- writes per later node event: new GPU nodes joining (1 label patch each expected), and label changes the operator does
  not own (0 expected) (target O(1));
- the operator's resident memory, peak and at the end (target under 250 MB).

The operator resyncs every 5 s here, so "settled" means two more reconciles; a resync itself writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "sim"), str(ROOT / "node-agent")]

from kubesim.server import Config, KubeSim  # noqa: E402
from support import CRD, NS, Operator, memory_mb, wait_for  # noqa: E402

RESULT = ROOT / "bench" / "results" / "operator.json"
GPU_LABELS = {
    "feature.node.kubernetes.io/pci-10de.present": "true",
    "nvidia.com/mig.capable": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
}
WANTED = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.deploy.device-plugin": "true",
    "nvidia.com/gpu.deploy.mig-manager": "true",
    "nvidia.com/mig.config": "all-disabled",
}
POLICY = {
    "apiVersion": "nvidia.com/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "cluster-policy"},
    "spec": {
        "mig": {"strategy": "single"},
        "migManager": {"enabled": True, "config": {"default": "all-disabled"}},
        "daemonsets": {"updateStrategy": "RollingUpdate"},
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--later", type=int, default=20, help="node events of each kind after convergence")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()

    import yaml
    from kubernetes import client, config

    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp, KubeSim(Config(bookmark_interval=5.0)) as sim:
        api = config.new_client_from_config(config_file=str(sim.kubeconfig))  # type: ignore[no-untyped-call]
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": NS}})
        client.ApiextensionsV1Api(api).create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
        custom.create_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", POLICY)
        op = Operator(sim.kubeconfig, Path(tmp) / "operator.log", "--resync-period=5")
        try:
            wait_for(lambda: op.reconciles() >= 1, 120, 0.2, "the operator's first reconcile")
            peak_mb = 0.0
            writes_before = op.writes()
            rv_before = sim.resource_version()

            def node(i: int, prefix: str = "gpu") -> None:
                core.create_node({"metadata": {"name": f"{prefix}-{i:05d}", "labels": dict(GPU_LABELS)}})

            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(node, range(args.nodes)))
            created_s = time.monotonic() - started

            def labelled_count() -> int:
                items = core.list_node().items
                return sum(1 for n in items if all((n.metadata.labels or {}).get(k) == v for k, v in WANTED.items()))

            def converged() -> bool:
                nonlocal peak_mb
                peak_mb = max(peak_mb, memory_mb(op.proc.pid).get("VmRSS", 0.0))
                if labelled_count() < args.nodes:
                    return False
                policy = custom.get_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")
                status = policy.get("status") or {}
                ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
                gpu_nodes = op.metrics().get("gpu_operator_gpu_nodes", 0)
                return (
                    status.get("state") == "ready" and ready.get("reason") == "Reconciled" and gpu_nodes >= args.nodes
                )

            wait_for(converged, 600, 0.5, "all nodes labelled and the ClusterPolicy ready")
            converge_s = time.monotonic() - started
            writes_total = op.writes() - writes_before
            rv_total = sim.resource_version() - rv_before

            # later events: new GPU nodes (expect one label patch each)
            base = op.writes()
            for i in range(args.later):
                node(i, "late")
            wait_for(lambda: labelled_count() >= args.nodes + args.later, 300, 0.5, "late nodes labelled")
            reconciles = op.reconciles()
            wait_for(lambda: op.reconciles() >= reconciles + 2, 120, 0.2, "settled")
            join_writes = op.writes() - base

            # later events: labels the operator does not own (expect none)
            base = op.writes()
            for i in range(args.later):
                name = f"gpu-{i:05d}"
                core.patch_node(name, {"metadata": {"labels": {"example.com/touched": str(i)}}})
            reconciles = op.reconciles()
            wait_for(lambda: op.reconciles() >= reconciles + 2, 120, 0.2, "settled")
            touch_writes = op.writes() - base
            memory = memory_mb(op.proc.pid)
        finally:
            op.stop()

    result = {
        "benchmark": "operator",
        "command": ".venv/bin/python bench/operator.py",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "nodes": args.nodes,
        "create_nodes_seconds": round(created_s, 2),
        "converge_seconds": round(converge_s, 2),
        "operator_writes_until_converged": writes_total,
        "operator_writes_per_node": round(writes_total / args.nodes, 3),
        "kubesim_resource_version_delta": rv_total,
        "writes_per_later_event": {
            "gpu_node_joins": round(join_writes / args.later, 3),
            "foreign_label_changes": round(touch_writes / args.later, 3),
        },
        "operator_memory_mb": {"peak_rss_sampled": peak_mb, "rss_end": memory.get("VmRSS"), "hwm": memory.get("VmHWM")},
        "targets": {"converge_seconds": 60, "memory_mb": 250, "writes_per_event": "O(1)"},
        "meets_targets": converge_s < 60 and (memory.get("VmHWM") or 0) < 250 and join_writes / args.later <= 2,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
