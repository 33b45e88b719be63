"""Scale benchmark (issue 10, scope 3): a 1,000-node simulated cluster with the operator, and 50 nodes with running
node agents relabelled at once.

Run from the repository root: `.venv/bin/python bench/scale.py [--nodes 1000]` (every 20th node runs an agent). Writes
`bench/results/scale.json` and prints a summary. About 5 minutes on 2 CPUs.

The cluster: kubesim in this process with a topology of 1,000 GPU nodes (`gpu-0000` ... `gpu-0999`, 8x H100 80GB
each, MIG disabled), so its controllers, scheduler and kubelet run every DaemonSet pod, and emulate NVIDIA's device
plugin and GFD on every node. The operator runs as a real process (`python -m gpu_operator run`, its default 60 s
resync), out of cluster as in `bench/operator.py`, and manages all 1,000 nodes; the ClusterPolicy uses the `mixed`
MIG strategy and `all-disabled` as the default config.

Agents on exactly 50 nodes: every 20th node (`gpu-0000`, `gpu-0020`, ...) runs the node agent; the other 950 carry
`nvidia.com/gpu.deploy.mig-manager=false` from the topology, the per-node opt-out of one operand (as NVIDIA's),
which the operator leaves alone (it sets that label only where it is absent). No product or kubesim change is needed:
the mig-manager DaemonSet selects `nvidia.com/gpu.deploy.mig-manager=true`, so kubesim's kubelet starts the agent
(`mig-manager`, a real process per node) on the 50 nodes only. Every other operand runs on all 1,000 nodes.

Measured:
1. **Operator convergence**: from the operator's start until every node carries the operator's labels
   (`gpu.present`, the container deploy labels, `mig.config=all-disabled`), the ClusterPolicy is `ready` with reason
   `Reconciled`, and every agent has reported `nvidia.com/mig.config.state=success` for the default. The nodes exist
   before the operator starts (kubesim registers the topology's nodes at start-up).
2. **Relabel convergence**: the 50 agent nodes get `nvidia.com/mig.config` patched at once (50 concurrent
   strategic-merge patches, the client's default, one thread each, released by a barrier), first to `all-balanced`
   (with the MIG mode change), then to `all-1g.10gb` (every GPU's instances rebuilt). A node has converged when its
   state label is `success` for that config, its journal annotation is gone, every component gate is `true` again
   and GFD's labels show the config's MIG devices (`nvidia.com/mig-<profile>.count`, mixed strategy). Per node:
   seconds from the release of the patches; median, p90, max, and the total (the last node). Target: every node
   within 60 s. Also recorded per round: the CPU time the 50 agents (sum and median), the operator and this process
   (kubesim and the bench) used, and the load average before it: all 50 agents share this machine's CPUs, where each
   would have its own node.
3. **API requests per relabelled node**: kubesim records every request (`Config(record_requests=True)`). The
   requests from the patches until the API falls quiet (no request for 2 s after the last node converged) are split
   by client from what they address: the Node itself (read, patch, watch with `metadata.name=<node>`), pods with
   `spec.nodeName=<node>` or one of that node's pods by name, the `<node>-mig-config` ConfigMap, and Events: agents
   post their Node Events in `default`, the operator posts its own in its namespace, so each Event POST is matched to
   a node by the Events kubesim stored. The bench's own patches carry `fieldManager=bench-scale`; the operator's
   writes carry `fieldManager=gpu-operator`; the rest (watches, lists, applies, ClusterPolicy status) is the
   operator's. Reported: per agent, median and max; and, as the conservative figure the target is checked against,
   every request of the phase (agents, operator and bench) divided by the number of relabelled nodes. Target: O(1),
   under 50 requests per node. The operator's own writes (`gpu_operator_writes_total`) are reported too.
4. **Memory**: the operator's VmHWM (peak resident set) at the end, and each agent's VmHWM (median, max over the
   50), read from /proc; agents are this process's children found by their `NODE_NAME`. Targets: operator under
   250 MB, each agent under 80 MB.

Convergence is observed in-process (the store, through `KubeSim.call`), so watching it makes no API requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "sim"), str(ROOT / "node-agent")]

from kubesim.server import Config, KubeSim  # noqa: E402
from kubesim.topology import NodeSpec, Topology  # noqa: E402
from support import CRD, NS, Operator, memory_mb, wait_for  # noqa: E402

T = TypeVar("T")
RESULT = ROOT / "bench" / "results" / "scale.json"
GPUS = "H100-80GBx8"
EVERY = 20  # every 20th node runs an agent: 50 of 1,000
BENCH_MANAGER = "bench-scale"
OPERATOR_MANAGER = "gpu-operator"
DEFAULT_CONFIG = "all-disabled"
MIG_MANAGER = "nvidia.com/gpu.deploy.mig-manager"
CONFIG = "nvidia.com/mig.config"
STATE = "nvidia.com/mig.config.state"
JOURNAL = "nvidia.com/mig.config.journal"
OPERATOR_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.deploy.device-plugin": "true",
    "nvidia.com/gpu.deploy.gpu-feature-discovery": "true",
    "nvidia.com/gpu.deploy.dcgm-exporter": "true",
    "nvidia.com/gpu.deploy.dcgm": "true",
    CONFIG: DEFAULT_CONFIG,
}
GATES = (
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm",
)
# GFD's labels (mixed strategy) for each config on 8x H100 80GB: NVIDIA's all-balanced is 2x 1g.10gb, 1x 2g.20gb
# and 1x 3g.40gb per GPU; all-1g.10gb is 7x 1g.10gb per GPU.
ROUNDS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "all-balanced",
        {
            "nvidia.com/mig-1g.10gb.count": "16",
            "nvidia.com/mig-2g.20gb.count": "8",
            "nvidia.com/mig-3g.40gb.count": "8",
        },
    ),
    ("all-1g.10gb", {"nvidia.com/mig-1g.10gb.count": "56"}),
)
POLICY = {
    "apiVersion": "nvidia.com/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "cluster-policy"},
    "spec": {
        "mig": {"strategy": "mixed"},
        "migManager": {"enabled": True, "config": {"default": DEFAULT_CONFIG}},
    },
}
TARGETS = {
    "relabel_converge_seconds": 60.0,
    "api_requests_per_relabelled_node": 50.0,
    "operator_memory_mb": 250.0,
    "agent_memory_mb": 80.0,
}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (its threads included, its children not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PRODUCT = ("operator", "node-agent", "sim", "charts", "crds")


def source_state() -> dict[str, Any]:
    """The commit measured, and the product files that differed from it when the run started (a shared checkout)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    changed = git("status", "--porcelain", "--", *PRODUCT).splitlines()
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_product_files": [line[3:] for line in changed]}


def changed_since(started: float) -> list[str]:
    """Product source files modified after `started` (wall clock): processes started later may have run them."""
    out = []
    for top in PRODUCT:
        for path in (ROOT / top).rglob("*"):
            if path.suffix in (".py", ".yaml", ".j2", ".json") and path.is_file() and path.stat().st_mtime > started:
                out.append(str(path.relative_to(ROOT)))
    return sorted(out)


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float], digits: int = 2) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "p90": round(percentile(values, 0.9), digits),
        "max": round(max(values), digits),
    }


def topology(nodes: int) -> tuple[Topology, list[str]]:
    specs, agents = [], []
    for i in range(nodes):
        name = f"gpu-{i:04d}"
        if i % EVERY == 0:
            agents.append(name)
            specs.append(NodeSpec(name, gpus=GPUS))
        else:
            specs.append(NodeSpec(name, gpus=GPUS, labels={MIG_MANAGER: "false"}))
    return Topology(nodes=tuple(specs)), agents


def agent_pids() -> dict[str, int]:
    """NODE_NAME -> pid of this process's children that run the node agent (started by kubesim's kubelet)."""
    me = str(os.getpid())
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[1] != me or b"mig-manager" not in (entry / "cmdline").read_bytes():
                continue
            env = dict(item.split("=", 1) for item in (entry / "environ").read_text().split("\0") if "=" in item)
        except (OSError, IndexError):
            continue
        if env.get("NODE_NAME"):
            found[env["NODE_NAME"]] = int(entry.name)
    return found


class Cluster:
    """Reads of the simulated cluster's store, on kubesim's loop (no API requests)."""

    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim

    def _store(self) -> Any:
        assert self.sim.cluster is not None
        return self.sim.cluster.store

    def node_meta(self, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        wanted = None if names is None else set(names)

        def read() -> dict[str, dict[str, Any]]:
            out = {}
            for stored in self._store().items(("", "nodes")):
                if wanted is None or stored.name in wanted:
                    meta = stored.obj["metadata"]
                    out[stored.name] = {
                        "labels": dict(meta.get("labels") or {}),
                        "annotations": dict(meta.get("annotations") or {}),
                    }
            return out

        return self.sim.call(read)

    def policy_ready(self) -> bool:
        def read() -> bool:
            for stored in self._store().items(("nvidia.com", "clusterpolicies")):
                status: dict[str, Any] = stored.obj.get("status") or {}
                ready: dict[str, Any] = next(
                    (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
                )
                return status.get("state") == "ready" and ready.get("reason") == "Reconciled"
            return False

        return self.sim.call(read)

    def pod_nodes(self) -> dict[str, str]:
        """Pod name -> node name, for every pod bound to a node."""

        def read() -> dict[str, str]:
            return {
                stored.name: str(stored.obj["spec"]["nodeName"])
                for stored in self._store().items(("", "pods"))
                if (stored.obj.get("spec") or {}).get("nodeName")
            }

        return self.sim.call(read)

    def node_events(self) -> dict[str, set[str]]:
        """Node name -> names of the Events about it in `default` (what the agents post)."""

        def read() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for stored in self._store().items(("", "events"), "default"):
                involved = stored.obj.get("involvedObject") or {}
                if involved.get("kind") == "Node":
                    out.setdefault(str(involved.get("name")), set()).add(stored.name)
            return out

        return self.sim.call(read)

    def request_count(self) -> int:
        def read() -> int:
            assert self.sim.cluster is not None and self.sim.cluster.api.requests is not None
            return len(self.sim.cluster.api.requests)

        return self.sim.call(read)

    def requests(self) -> list[list[Any]]:
        def read() -> list[list[Any]]:
            assert self.sim.cluster is not None and self.sim.cluster.api.requests is not None
            return [list(r) for r in self.sim.cluster.api.requests]

        return self.sim.call(read)


def converged(meta: Mapping[str, Any], config: str, gfd: Mapping[str, str]) -> bool:
    labels, annotations = meta["labels"], meta["annotations"]
    return (
        labels.get(CONFIG) == config
        and labels.get(STATE) == "success"
        and JOURNAL not in annotations
        and all(labels.get(g) == "true" for g in GATES)
        and all(labels.get(k) == v for k, v in gfd.items())
    )


def classify(
    requests: list[list[Any]], agents: set[str], pods: Mapping[str, str], events: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Per agent node: its requests; per client (agents, operator, bench): totals; the operator's by HTTP method."""
    per_node = dict.fromkeys(agents, 0)
    clients = {"agents": 0, "operator": 0, "bench": 0}
    event_posts = 0
    operator_methods: dict[str, int] = {}
    for method, path_qs, *_ in requests:
        split = urlsplit(str(path_qs))
        path = unquote(split.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        manager = query.get("fieldManager", "")
        selector = query.get("fieldSelector", "")
        parts = path.strip("/").split("/")
        node = ""
        if manager == BENCH_MANAGER:
            clients["bench"] += 1
            continue
        if manager != OPERATOR_MANAGER:
            if len(parts) >= 4 and parts[:3] == ["api", "v1", "nodes"]:
                node = parts[3]
            elif selector.startswith(("metadata.name=", "spec.nodeName=")):
                node = selector.partition("=")[2]
            elif len(parts) == 6 and parts[4] == "configmaps" and parts[5].endswith("-mig-config"):
                node = parts[5].removesuffix("-mig-config")
            elif len(parts) == 6 and parts[4] == "pods":
                node = pods.get(parts[5], "")
            elif method == "POST" and path == "/api/v1/namespaces/default/events":
                event_posts += 1
                continue
        if node in per_node:
            per_node[node] += 1
            clients["agents"] += 1
        else:
            clients["operator"] += 1
            operator_methods[str(method)] = operator_methods.get(str(method), 0) + 1
    matched = 0
    for node, count in events.items():
        if node in per_node:
            per_node[node] += count
            matched += count
    clients["agents"] += min(matched, event_posts)
    clients["operator"] += max(0, event_posts - matched)
    return per_node, clients, operator_methods


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("-o", "--output", type=Path, default=RESULT)
    args = parser.parse_args()
    if args.nodes % EVERY:
        raise SystemExit(f"--nodes must be a multiple of {EVERY}")

    import yaml
    from kubernetes import client, config

    topo, agents = topology(args.nodes)
    settings = Config(
        topology=topo,
        record_requests=True,
        bookmark_interval=5.0,
        restart_backoff=0.5,
        restart_backoff_max=5.0,
        reboot_seconds=0.5,
        gpu_poll_interval=0.2,
    )
    load = os.getloadavg()[0]
    source = source_state()
    wall_start = time.time()
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        t_start = time.monotonic()
        sim = KubeSim(settings).start(timeout=300)
        try:
            cluster = Cluster(sim)
            wait_for(lambda: len(cluster.node_meta()) == args.nodes, 300, 0.2, "the topology's nodes")
            startup_s = time.monotonic() - t_start
            api = config.new_client_from_config(config_file=str(sim.kubeconfig))  # type: ignore[no-untyped-call]
            core: Any = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": NS}})
            client.ApiextensionsV1Api(api).create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
            client.CustomObjectsApi(api).create_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", POLICY)

            op = Operator(sim.kubeconfig, Path(tmp) / "operator.log")
            try:
                measured = run(args, sim, cluster, core, op, agents, wall_start)
            except BaseException:
                op.stop()
                sys.stderr.write((Path(tmp) / "operator.log").read_text(errors="replace")[-4000:])
                raise
            op.stop()
        finally:
            sim.stop(timeout=120)

    changed_early = measured.pop("changed_before_processes_started")
    result = {
        "benchmark": "scale",
        "command": ".venv/bin/python bench/scale.py",
        "date": started_at,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_start": round(load, 2),
        },
        "parameters": {
            "nodes": args.nodes,
            "agent_nodes": len(agents),
            "gpus_per_node": GPUS,
            "agents_on": f"every {EVERY}th node; the others carry {MIG_MANAGER}=false",
            "mig_strategy": "mixed",
            "default_config": DEFAULT_CONFIG,
            "configs": [name for name, _ in ROUNDS],
            "operator_resync_seconds": 60,
        },
        "source": {
            **source,
            "product_files_changed_before_every_process_started": changed_early,
            "product_files_changed_during_run": changed_since(wall_start),
        },
        "kubesim_startup_seconds": round(startup_s, 2),
        **measured,
        "targets": TARGETS,
    }
    result["meets_targets"] = all(result["meets"].values())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    for r in result["rounds"]:
        print(
            f"{r['config']}: {len(agents)} nodes converged in {r['total_seconds']} s (median {r['seconds']['median']} "
            f"s); {r['api_requests']['per_relabelled_node_all_clients']} requests per node (all clients)"
        )
    source = result["source"]
    if source["uncommitted_product_files"] or source["product_files_changed_before_every_process_started"]:
        print(f"warning: the processes measured may not all have run the commit's code: {source}")
    print(f"written to {args.output}")
    return 0


def run(
    args: argparse.Namespace,
    sim: KubeSim,
    cluster: Cluster,
    core: Any,
    op: Operator,
    agents: list[str],
    wall_start: float,
) -> dict[str, Any]:
    agent_set = set(agents)
    t0 = time.monotonic()
    peak = {"operator": 0.0}
    pids: dict[str, int] = {}

    def sample() -> None:
        peak["operator"] = max(peak["operator"], memory_mb(op.proc.pid).get("VmRSS", 0.0))

    # 1. the operator labels every node, the ClusterPolicy gets ready, every agent settles on the default
    marks: dict[str, float] = {}

    def operator_converged() -> bool:
        sample()
        if op.proc.poll() is not None:
            raise SystemExit(f"the operator exited ({op.proc.returncode})")
        metas = cluster.node_meta()
        if "labelled" not in marks:
            if not all(
                all(m["labels"].get(k) == v for k, v in OPERATOR_LABELS.items())
                and m["labels"].get(MIG_MANAGER) == ("true" if n in agent_set else "false")
                for n, m in metas.items()
            ):
                return False
            marks["labelled"] = time.monotonic() - t0
        if "agents" not in marks:
            if not all(converged(metas[n], DEFAULT_CONFIG, {}) for n in agents):
                return False
            marks["agents"] = time.monotonic() - t0
        if not cluster.policy_ready():
            return False
        marks["ready"] = time.monotonic() - t0
        return True

    wait_for(operator_converged, 600, 0.5, "every node labelled, every agent at the default, the ClusterPolicy ready")
    converge_s = time.monotonic() - t0
    pids = agent_pids()
    if set(pids) != agent_set:
        raise SystemExit(f"agent processes on {sorted(pids)}, expected {agents}")
    changed_before_start = changed_since(wall_start)  # the operator and every agent had started by now

    # let the start-up settle: the API quiet for 2 s
    quiet(cluster)

    # 2. relabel the agent nodes at once, once per config
    rounds = []
    for name, gfd in ROUNDS:
        rounds.append(relabel(cluster, core, op, pids, name, gfd, sample))

    operator_memory = memory_mb(op.proc.pid)
    agent_memory = {n: memory_mb(pid) for n, pid in pids.items()}
    hwm = [m["VmHWM"] for m in agent_memory.values()]
    rss = [m["VmRSS"] for m in agent_memory.values()]
    worst_total = max(r["total_seconds"] for r in rounds)
    worst_requests = max(r["api_requests"]["per_relabelled_node_all_clients"] for r in rounds)
    return {
        "changed_before_processes_started": changed_before_start,
        "operator_converge_seconds": {
            "all_nodes_labelled": round(marks["labelled"], 2),
            "all_agents_at_default": round(marks["agents"], 2),
            "clusterpolicy_ready": round(converge_s, 2),
        },
        "rounds": rounds,
        "operator_memory_mb": {
            "hwm": operator_memory.get("VmHWM"),
            "rss_end": operator_memory.get("VmRSS"),
            "peak_rss_sampled": peak["operator"],
        },
        "agent_memory_mb": {
            "agents": len(agent_memory),
            "hwm_median": round(statistics.median(hwm), 1),
            "hwm_max": max(hwm),
            "rss_end_median": round(statistics.median(rss), 1),
            "rss_end_max": max(rss),
        },
        "meets": {
            "relabel_converge_seconds": worst_total < TARGETS["relabel_converge_seconds"],
            "api_requests_per_relabelled_node": worst_requests < TARGETS["api_requests_per_relabelled_node"],
            "operator_memory_mb": (operator_memory.get("VmHWM") or 0) < TARGETS["operator_memory_mb"],
            "agent_memory_mb": max(hwm) < TARGETS["agent_memory_mb"],
        },
    }


def relabel(
    cluster: Cluster,
    core: Any,
    op: Operator,
    pids: Mapping[str, int],
    name: str,
    gfd: Mapping[str, str],
    sample: Callable[[], None],
) -> dict[str, Any]:
    """Patch `nvidia.com/mig.config=name` on every agent node at once; wait for all of them; count the requests and
    the CPU time each party used."""
    agents = sorted(pids)
    load = os.getloadavg()[0]
    cpu_before = {n: cpu_seconds(pid) for n, pid in pids.items()}
    cpu_before_operator, cpu_before_self = cpu_seconds(op.proc.pid), cpu_seconds(os.getpid())
    before_requests = cluster.request_count()
    before_events = {n: len(e) for n, e in cluster.node_events().items()}
    writes_before = op.writes()
    barrier = threading.Barrier(len(agents) + 1)
    seen: dict[str, float] = {}

    def patch(node: str) -> None:
        barrier.wait()
        core.patch_node(node, {"metadata": {"labels": {CONFIG: name}}}, field_manager=BENCH_MANAGER)

    with ThreadPoolExecutor(len(agents)) as pool:
        futures = [pool.submit(patch, n) for n in agents]
        barrier.wait()  # every thread is at the barrier: the patches go out together
        sent = time.monotonic()

        def all_seen() -> bool:
            sample()
            metas = cluster.node_meta([n for n in agents if n not in seen])
            now = time.monotonic() - sent
            for n, meta in metas.items():
                if converged(meta, name, gfd):
                    seen[n] = now
            failed = [n for n, m in metas.items() if m["labels"].get(STATE) == "failed"]
            if failed:
                raise SystemExit(f"{name}: the agents on {failed} report failed")
            return len(seen) == len(agents)

        wait_for(all_seen, 300, 0.05, f"{name} on every agent node")
        for f in futures:
            f.result()
    quiet(cluster)
    agent_cpu = [cpu_seconds(pid) - cpu_before[n] for n, pid in pids.items()]
    operator_cpu = cpu_seconds(op.proc.pid) - cpu_before_operator
    self_cpu = cpu_seconds(os.getpid()) - cpu_before_self
    requests = cluster.requests()[before_requests:]
    events = cluster.node_events()
    new_events = {n: len(e) - before_events.get(n, 0) for n, e in events.items()}
    per_node, clients, operator_methods = classify(requests, set(agents), cluster.pod_nodes(), new_events)
    counts = list(per_node.values())
    return {
        "config": name,
        "gfd_labels_checked": dict(gfd),
        "seconds": summary(list(seen.values())),
        "total_seconds": round(max(seen.values()), 2),
        "load_average_1m_before": round(load, 2),
        "cpu_seconds": {
            "agents_total": round(sum(agent_cpu), 1),
            "agent_median": round(statistics.median(agent_cpu), 2),
            "operator": round(operator_cpu, 2),
            "kubesim_and_bench": round(self_cpu, 1),
        },
        "api_requests": {
            "all_clients": len(requests),
            "per_relabelled_node_all_clients": round(len(requests) / len(agents), 2),
            "by_client": clients,
            "per_agent": {"median": statistics.median(counts), "max": max(counts), "min": min(counts)},
            "operator_writes": op.writes() - writes_before,
            "operator_by_method": dict(sorted(operator_methods.items())),
        },
    }


def quiet(cluster: Cluster, seconds: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until kubesim has had no new request for `seconds` (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    count, since = cluster.request_count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cluster.request_count()
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return


if __name__ == "__main__":
    raise SystemExit(main())
