"""mig-manager node agent benchmark (issue 6, acceptance 7).

Run from the repository root: `.venv/bin/python bench/agent.py`. Writes `bench/results/agent.json` and prints a
summary. kubesim runs in this process; the agent runs as its own process (`python -m mig_manager.agent`) on a
simulated node with 8 H100 80GB GPUs (MIG disabled at first), with the operator's defaults (host GPU clients not shut
down) and NVIDIA's generated config for these GPUs as CONFIG_FILE. A stand-in
for the operator's DaemonSets keeps one pod per component on the node while its gate is `true` and deletes it at once
otherwise ("pods stop at once").

1. **Label change to `success`**: the bench patches `nvidia.com/mig.config` and watches the Node until the state is
   `success` for that config (journal gone). The first change (from MIG disabled to `all-balanced`) includes the MIG
   mode change; the following ones alternate `all-1g.10gb` and `all-balanced` (every GPU's instances rebuilt).
   Target: under 2 s.
2. **API writes per reconfiguration**: the agent's own count of successful Kubernetes writes (patches, creates,
   deletes; `mig_manager_api_writes_total` on its /metrics), before and after each change, split into Node patches and
   Events by the reasons the agent logs.
3. **Idle agent**: after the changes, the agent's resident memory (VmRSS, VmHWM from /proc) and the CPU time it uses
   over an idle window (utime + stime from /proc), with its default resync (300 s) and config check (5 s) periods.
   Targets: under 80 MB; no polling (CPU near zero).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from kubesim.server import Config, KubeSim
from mig_manager.cli import parse_gpus
from mig_manager.devices.simulated import init_host
from mig_manager.planner import device_types_of_node, generate_config
from mig_manager.spec import dump_spec

ROOT = Path(__file__).resolve().parents[1]
RESULT_PATH = ROOT / "bench" / "results" / "agent.json"
NODE = "bench-node"
NAMESPACE = "gpu-operator"
GPUS = "H100-SXM5-80GBx8"
COMPONENTS = {
    "nvidia.com/gpu.deploy.device-plugin": "nvidia-device-plugin-daemonset",
    "nvidia.com/gpu.deploy.gpu-feature-discovery": "gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter": "nvidia-dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm": "nvidia-dcgm",
}
TARGET_SECONDS = 2.0
TARGET_MB = 80.0


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonSets:
    """One pod per component while its gate is `true`; deleted at once when it is not."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sync(self, labels: dict[str, str]) -> None:
        for gate, app in COMPONENTS.items():
            name = f"{app}-{NODE}"
            try:
                if labels.get(gate) == "true":
                    body = {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": name, "labels": {"app": app}},
                        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]},
                    }
                    self.core.create_namespaced_pod(NAMESPACE, body)
                else:
                    self.core.delete_namespaced_pod(name, NAMESPACE)
            except client.ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    def run(self) -> None:
        while not self.stop.is_set():
            w = watch.Watch()
            for ev in w.stream(
                self.core.list_node, field_selector=f"metadata.name={NODE}", timeout_seconds=30, deserialize=False
            ):
                if ev["type"] in ("ADDED", "MODIFIED"):
                    self.sync(ev["object"]["metadata"].get("labels") or {})
                if self.stop.is_set():
                    return


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def writes(port: int) -> int:
    return int(scrape(port)[f'mig_manager_api_writes_total{{node="{NODE}"}}'])


def stable_writes(port: int) -> int:
    """The write counter once it stops moving (the success Event follows the final patch)."""
    last = writes(port)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = writes(port)
        if now == last:
            return now
        last = now
    return last


def wait_success(core: client.CoreV1Api, config_name: str, resource_version: str, timeout: float = 60) -> float:
    """Watch the Node from `resource_version` until it is `success` for `config_name`; the time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        w = watch.Watch()
        for ev in w.stream(
            core.list_node,
            field_selector=f"metadata.name={NODE}",
            resource_version=resource_version,
            timeout_seconds=max(1, int(deadline - time.monotonic())),
            deserialize=False,
        ):
            obj = ev["object"]
            meta = obj.get("metadata", {})
            resource_version = meta.get("resourceVersion", resource_version)
            labels = meta.get("labels") or {}
            annotations = meta.get("annotations") or {}
            if (
                labels.get("nvidia.com/mig.config.state") == "success"
                and labels.get("nvidia.com/mig.config") == config_name
                and "nvidia.com/mig.config.journal" not in annotations
                and f"'{config_name}'" in annotations.get("nvidia.com/mig.config.state.reason", "")
            ):
                return time.perf_counter()
    raise SystemExit(f"timed out waiting for {config_name} to succeed")


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024,
        "cpu_s": (int(stat[11]) + int(stat[12])) / ticks,
        "threads": int(fields["Threads"]),
    }


def run(repeats: int, idle_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, KubeSim(Config(bookmark_interval=5.0)) as sim:
        api = config.new_client_from_config(config_file=str(sim.kubeconfig))  # type: ignore[no-untyped-call]
        core = client.CoreV1Api(api)
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": NODE, "labels": dict.fromkeys(COMPONENTS, "true")},
            }
        )
        state = init_host(Path(tmp) / "gpus.json", GPUS)
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(dump_spec(generate_config(device_types_of_node(parse_gpus(GPUS)))))
        daemonsets = DaemonSets(core)
        daemonsets.thread.start()
        port = free_port()
        env = dict(os.environ)
        env.update(
            NODE_NAME=NODE,
            KUBECONFIG=str(sim.kubeconfig),
            CONFIG_FILE=str(config_file),
            DEFAULT_GPU_CLIENTS_NAMESPACE=NAMESPACE,
            MIG_SIM_STATE=str(state),
            MIG_MANAGER_METRICS_PORT=str(port),
            MIG_MANAGER_METRICS_ADDRESS="127.0.0.1",
        )
        log_path = Path(tmp) / "agent.log"
        with open(log_path, "w") as log:
            agent = subprocess.Popen([sys.executable, "-m", "mig_manager.agent"], env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise SystemExit(f"the agent did not become ready:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.1)
            runs: list[dict[str, Any]] = []
            names = ["all-balanced"] + [("all-1g.10gb", "all-balanced")[i % 2] for i in range(repeats)]
            for i, name in enumerate(names):
                before = stable_writes(port)
                rv = json.loads(core.read_node(NODE, _preload_content=False).data)["metadata"]["resourceVersion"]
                started = time.perf_counter()
                core.patch_node(
                    NODE,
                    {"metadata": {"labels": {"nvidia.com/mig.config": name}}},
                    _content_type="application/merge-patch+json",
                )
                seen = wait_success(core, name, rv)
                after = stable_writes(port)
                runs.append(
                    {
                        "config": name,
                        "mode_change": i == 0,
                        "seconds": round(seen - started, 4),
                        "api_writes": after - before,
                    }
                )
            time.sleep(1.0)  # let the last events settle
            idle_start = proc_stats(agent.pid)
            time.sleep(idle_seconds)
            idle_end = proc_stats(agent.pid)
        finally:
            agent.terminate()
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
            daemonsets.stop.set()
    steady = [r["seconds"] for r in runs[1:]]
    cpu = idle_end["cpu_s"] - idle_start["cpu_s"]
    return {
        "benchmark": "agent",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": {"gpus": GPUS, "repeats": repeats, "idle_seconds": idle_seconds, "pods": "stop at once"},
        "label_to_success": {
            "mode_change_seconds": runs[0]["seconds"],
            "median_seconds": round(statistics.median(steady), 4) if steady else None,
            "max_seconds": round(max(steady), 4) if steady else None,
            "target_seconds": TARGET_SECONDS,
            "meets_target": all(r["seconds"] < TARGET_SECONDS for r in runs),
        },
        "api_writes_per_reconfiguration": {
            "median": statistics.median(r["api_writes"] for r in runs),
            "max": max(r["api_writes"] for r in runs),
            "note": "node patches (pending+pause+journal, journal phase, final state+restore) plus Events "
            "(started, applied); deleting validator pods adds one write per pod found",
        },
        "idle": {
            "rss_mb": round(idle_end["rss_mb"], 1),
            "peak_rss_mb": round(idle_end["hwm_mb"], 1),
            "threads": idle_end["threads"],
            "cpu_seconds": round(cpu, 3),
            "cpu_percent": round(100 * cpu / idle_seconds, 3),
            "target_mb": TARGET_MB,
            "meets_target": idle_end["rss_mb"] < TARGET_MB,
        },
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="label changes after the first (mode change) one")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("-o", "--output", type=Path, default=RESULT_PATH)
    args = parser.parse_args(argv)
    result = run(args.repeats, args.idle_seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    lts, writes_, idle = result["label_to_success"], result["api_writes_per_reconfiguration"], result["idle"]
    print(
        f"label change -> success on {GPUS}: first (mode change) {lts['mode_change_seconds']:.3f}s, "
        f"then median {lts['median_seconds']:.3f}s, max {lts['max_seconds']:.3f}s (target < {TARGET_SECONDS}s: "
        f"{'met' if lts['meets_target'] else 'MISSED'})"
    )
    print(f"API writes per reconfiguration: median {writes_['median']}, max {writes_['max']}")
    print(
        f"idle agent: {idle['rss_mb']} MB RSS (peak {idle['peak_rss_mb']} MB; target < {TARGET_MB} MB: "
        f"{'met' if idle['meets_target'] else 'MISSED'}), {idle['cpu_seconds']}s CPU over "
        f"{result['parameters']['idle_seconds']}s ({idle['cpu_percent']}%), {idle['threads']} threads"
    )
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
