"""NVIDIA's documented MIG workflows, run with the real helm and kubectl against kubesim's simulated GPU cluster.

One `Workflows` object drives one cluster through the workflows in order (install once, then relabel and upgrade), as
a user following NVIDIA's GPU Operator docs would. Each method runs the documented commands, prints each command and
its key output, and checks the outcome (raising `WorkflowError`). The e2e tests (`test_workflows.py`) and `make demo`
(`scripts/demo.py`) run the same methods, so the demo shows exactly what the tests check.

Waits are on conditions, bounded by wall time; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import yaml

from kubesim.server import Config, KubeSim
from kubesim.testing import Tools

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("KUBESIM_TOOLS", ROOT / ".tools" / "bin"))
CHART = "charts/gpu-operator"  # relative: commands run in the repository root, as a user types them
NS = "gpu-operator"
H100 = "node-h100"
A100 = "node-a100"
A30 = "node-a30"
CPU = "node-cpu"
MIG_NODES = (H100, A100, A30)
STATE = "nvidia.com/mig.config.state"
CONFIG = "nvidia.com/mig.config"
REASON = "nvidia.com/mig.config.state.reason"
INVENTORY = "nvidia.com/mig.inventory"
GATES = (
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm",
)
TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "120"))

# Workflow 5: a custom config through Helm values (NVIDIA's example geometry).
FIVE_ONE_CONFIG = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  five-1g-one-2g:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 5
        "2g.20gb": 1
"""
# Workflow 6 and 10: a custom ConfigMap created with kubectl from the repository's example file.
EXAMPLE_CONFIG = "examples/custom-mig-config.yaml"
KUBECTL_CONFIG = "my-mig-config"
# Workflow 8: the host's GPU clients to stop around a change (a subset of the node's units).
CLIENTS = ("nvsm.service", "nvidia-dcgm.service")
CLIENTS_CONFIG = "my-gpu-clients"
CLIENTS_YAML = "version: v1\nsystemd-services:\n" + "".join(f"  - {unit}\n" for unit in CLIENTS)


class WorkflowError(AssertionError):
    """A workflow did not end as NVIDIA's docs say it should."""


T = TypeVar("T")


def expect(condition: object, message: str) -> None:
    if not condition:
        raise WorkflowError(message)


def wait_for(predicate: Callable[[], T], what: str, timeout: float = TIMEOUT, interval: float = 0.1) -> T:
    """Poll `predicate` until it returns something truthy, bounded by wall time."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WorkflowError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def cluster_config(state_dir: Path | None = None) -> Config:
    """The default topology with fast simulated timings (restarts, reboots, GPU polls), as kubesim's own tests."""
    return Config(
        topology="default",
        state_dir=state_dir,
        bookmark_interval=1.0,
        restart_backoff=0.2,
        restart_backoff_max=1.0,
        reboot_seconds=0.5,
        gpu_poll_interval=0.05,
    )


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (a config.yaml inside Helm values) as literal blocks, the way people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockDumper.add_representer(str, _str)


@dataclass
class StateWatch:
    """`kubectl get node NODE -w -L nvidia.com/mig.config,nvidia.com/mig.config.state`: every (config, state) seen."""

    proc: subprocess.Popen[str]
    seen: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) < 2 or parts[0] == "NAME":
                continue
            # NAME STATUS ROLES AGE VERSION MIG.CONFIG MIG.CONFIG.STATE (an absent label is an empty column)
            row = (parts[-2], parts[-1]) if len(parts) >= 7 else ("", parts[-1])
            with self.lock:
                if not self.seen or self.seen[-1] != row:
                    self.seen.append(row)
                    self.lines.append(line.rstrip("\n"))

    def history(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.seen)

    def saw(self, *sequence: tuple[str, str]) -> bool:
        """The (config, state) pairs appeared in this order (not necessarily adjacent)."""
        history = iter(self.history())
        return all(any(row == wanted for row in history) for wanted in sequence)


@dataclass
class Workflows:
    sim: KubeSim
    home: Path
    out: TextIO = field(default_factory=lambda: sys.stdout)
    release: str = ""
    values_dir: Path = field(default_factory=Path)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.values_dir = self.home / "values"
        self.values_dir.mkdir(exist_ok=True)

    # ------------------------------------------------------------------ output

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def title(self, text: str) -> None:
        self.say(f"\n{'=' * 100}\n{text}\n{'=' * 100}")

    def show(self, text: str, limit: int = 60) -> None:
        lines = text.rstrip("\n").splitlines()
        if len(lines) > limit:
            lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
        for line in lines:
            self.say(f"  {line}")

    # ------------------------------------------------------------------ the real tools

    def env(self) -> dict[str, str]:
        return Tools(self.sim, self.home).env()  # the same private HOME and KUBECONFIG as the test fixtures

    def run(
        self,
        tool: str,
        *args: str,
        stdin: str | None = None,
        echo: bool = True,
        output: bool = True,
        check: bool = True,
        timeout: float = 330.0,  # helm's --wait defaults to 5 minutes
    ) -> str:
        if echo:
            shown = " ".join(a if re.fullmatch(r"[\w@%+=:,./{}\[\]-]+", a) else f"'{a}'" for a in args)
            self.say(f"$ {tool} {shown.replace(str(self.values_dir) + '/', '')}")
        try:
            proc = subprocess.run(
                [str(TOOLS / tool), *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env(),
                cwd=ROOT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise WorkflowError(f"{tool} {' '.join(args)} did not end within {timeout:.0f}s") from exc
        if check and proc.returncode != 0:
            raise WorkflowError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        if echo and output:
            self.show(proc.stdout)
        return proc.stdout

    def kubectl(self, *args: str, **kwargs: Any) -> str:
        return self.run("kubectl", *args, **kwargs)

    def helm(self, *args: str, **kwargs: Any) -> str:
        return self.run("helm", *args, **kwargs)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", echo=False))

    def labels(self, node: str) -> dict[str, str]:
        return dict(self.get("node", node)["metadata"].get("labels") or {})

    def annotations(self, node: str) -> dict[str, str]:
        return dict(self.get("node", node)["metadata"].get("annotations") or {})

    def print_labels(self, node: str, pattern: str = r"nvidia\.com/") -> dict[str, str]:
        """`kubectl get node NODE -o json | jq '.metadata.labels'`, keeping the keys that match `pattern`."""
        labels = self.labels(node)
        jq = f'.metadata.labels | with_entries(select(.key | test("{pattern}")))'
        self.say(f"$ kubectl get node {node} -o json | jq '{jq}'")
        shown = {k: v for k, v in sorted(labels.items()) if re.search(pattern, k) and k != "nvidia.com/gfd.timestamp"}
        self.show(json.dumps(shown, indent=2))
        return labels

    def policy(self) -> dict[str, Any]:
        return dict(self.get("clusterpolicies.nvidia.com", "cluster-policy"))

    @contextmanager
    def watch_state(self, node: str) -> Iterator[StateWatch]:
        """Watch a node's config and state from before a change until it ends; prints the distinct rows."""
        args = ("get", "node", node, "-w", "-L", f"{CONFIG},{STATE}")
        self.say(f"$ kubectl {' '.join(args)} &")
        proc = subprocess.Popen(
            [str(TOOLS / "kubectl"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env(),
            cwd=ROOT,
        )
        watch = StateWatch(proc)
        reader = threading.Thread(target=watch.read, daemon=True)
        reader.start()
        try:
            wait_for(watch.history, f"`kubectl get node {node} -w` to list the node", timeout=60)
            yield watch
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(5)
            assert proc.stdout is not None
            proc.stdout.close()
            with watch.lock:
                self.say("  (the watch's rows, consecutive repeats left out)")
                self.show("\n".join(watch.lines))

    def relabel(self, node: str, config: str, done: Callable[[dict[str, str]], bool], what: str) -> StateWatch:
        """`kubectl label nodes NODE nvidia.com/mig.config=CONFIG --overwrite`, then wait for `success` and `done`."""
        with self.watch_state(node) as watch:
            self.kubectl("label", "nodes", node, f"{CONFIG}={config}", "--overwrite")
            wait_for(lambda: watch.saw((config, "pending"), (config, "success")), f"{node}: {config} pending, success")
        wait_for(lambda: done(self.labels(node)), f"{node}: {what}")
        return watch

    def release_name(self) -> str:
        if not self.release:
            releases = json.loads(self.helm("list", "-n", NS, "-o", "json", echo=False))
            expect(len(releases) == 1, f"one release in {NS}, found {releases}")
            self.release = str(releases[0]["name"])
        return self.release

    def values_file(self, name: str, values: dict[str, Any]) -> str:
        path = self.values_dir / f"{name}.yaml"
        path.write_text(yaml.dump(values, Dumper=_BlockDumper, sort_keys=False))
        self.say(f"$ cat {path.name}")
        self.show(path.read_text())
        return str(path)

    def policy_observed(self) -> bool:
        policy = self.policy()
        return bool((policy.get("status") or {}).get("observedGeneration") == policy["metadata"].get("generation"))

    def policy_settled(self) -> bool:
        """The operator took the current spec (observedGeneration) and its operands are ready."""
        policy = self.policy()
        status = policy.get("status") or {}
        return (
            status.get("observedGeneration") == policy["metadata"].get("generation") and status.get("state") == "ready"
        )

    def policy_ready(self) -> bool:
        """Ready=True for the current generation."""
        policy = self.policy()
        conditions = (policy.get("status") or {}).get("conditions") or []
        return any(
            c.get("type") == "Ready"
            and c.get("status") == "True"
            and c.get("observedGeneration") == policy["metadata"].get("generation")
            for c in conditions
        )

    def rollout(self) -> None:
        """After a change of the ClusterPolicy: wait for the operator to take it, then for the MIG manager's rollout."""
        wait_for(self.policy_observed, "the operator to reconcile the ClusterPolicy (status.observedGeneration)")
        self.kubectl("rollout", "status", "daemonset/nvidia-mig-manager", "-n", NS, f"--timeout={TIMEOUT:.0f}s")

    def host_log(self, node: str) -> list[dict[str, Any]]:
        return list(json.loads((self.sim.node_dir(node) / "host-services.json").read_text()).get("log") or [])

    def host_units(self, node: str) -> dict[str, Any]:
        return dict(json.loads((self.sim.node_dir(node) / "host-services.json").read_text())["units"])

    def node_events(self, node: str, reason: str) -> list[dict[str, Any]]:
        events = self.get(
            "events",
            "-A",
            "--field-selector",
            f"involvedObject.kind=Node,involvedObject.name={node},reason={reason}",
        )
        return list(events["items"])

    # ------------------------------------------------------------------ the workflows

    def workflow_1_install(self) -> None:
        self.title("1. Install the operator with the single MIG strategy")
        self.kubectl("get", "nodes")
        self.helm(
            "install",
            "--wait",
            "--generate-name",
            "-n",
            NS,
            "--create-namespace",
            CHART,
            "--set",
            "mig.strategy=single",
            output=False,
        )
        self.release_name()

        def running() -> bool:
            pods = self.get("pods", "-n", NS)["items"]
            ready = {
                (p["metadata"]["labels"].get("app"), p["spec"].get("nodeName"))
                for p in pods
                if p["status"].get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            }
            apps = {app for app, _ in ready}
            return "gpu-operator" in apps and all(("nvidia-mig-manager", n) in ready for n in MIG_NODES)

        wait_for(running, "the operator and a MIG manager per MIG-capable node Running")

        def labelled() -> bool:
            for node in MIG_NODES:
                labels = self.labels(node)
                if (
                    labels.get("nvidia.com/mig.capable") != "true"
                    or labels.get("nvidia.com/gpu.deploy.mig-manager") != "true"
                    or labels.get(CONFIG) != "all-disabled"
                    or labels.get(STATE) != "success"
                ):
                    return False
            return True

        wait_for(labelled, "every MIG-capable node: mig.capable=true, deploy.mig-manager=true, all-disabled, success")
        self.kubectl("get", "pods", "-n", NS)
        self.kubectl("get", "nodes", "-L", f"nvidia.com/mig.capable,{CONFIG},{STATE}")
        cpu = self.labels(CPU)
        expect(
            "nvidia.com/gpu.deploy.mig-manager" not in cpu and CONFIG not in cpu,
            f"{CPU} has no GPU: no MIG labels, got {cpu}",
        )
        labels = self.print_labels(H100, r"nvidia\.com/(mig\.|gpu\.deploy\.mig-manager)")
        expect(labels.get("nvidia.com/mig.capable") == "true", f"{H100} mig.capable=true: {labels}")

    def set_strategy(self, strategy: str) -> None:
        """NVIDIA's documented JSON patch of the ClusterPolicy's MIG strategy."""
        if (self.policy()["spec"].get("mig") or {}).get("strategy") == strategy:
            self.say(f"(the ClusterPolicy's MIG strategy is already {strategy})")
            return
        patch = json.dumps([{"op": "replace", "path": "/spec/mig/strategy", "value": strategy}])
        self.kubectl("patch", "clusterpolicies.nvidia.com/cluster-policy", "--type=json", f"-p={patch}")
        # not `ready` yet: NVIDIA's device plugin refuses to start while the GPUs' geometry does not suit the new
        # strategy (single with several profiles), until the node is relabelled
        wait_for(self.policy_observed, f"the operator to take MIG strategy {strategy}")

    def workflow_2_single(self) -> None:
        self.title("2. Single strategy: all-1g.10gb on the 8x H100 node")
        self.set_strategy("single")

        def published(labels: dict[str, str]) -> bool:
            return (
                labels.get("nvidia.com/mig.strategy") == "single"
                and labels.get("nvidia.com/gpu.count") == "56"
                and labels.get("nvidia.com/gpu.product", "").endswith("-MIG-1g.10gb")
            )

        self.relabel(H100, "all-1g.10gb", published, "GFD publishing 56 1g.10gb devices")
        labels = self.print_labels(H100, r"nvidia\.com/(mig\.config|mig\.strategy|gpu\.(count|product|slices|memory))")
        expect(labels.get("nvidia.com/gpu.count") == "56", f"gpu.count=56 (8 GPUs x 7): {labels}")
        expect(labels.get("nvidia.com/gpu.slices.ci") == "1", f"gpu.slices.ci=1: {labels}")
        expect(labels.get("nvidia.com/gpu.slices.gi") == "1", f"gpu.slices.gi=1: {labels}")
        expect(labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb", f"product: {labels}")

    def workflow_3_mixed(self) -> None:
        self.title("3. Mixed strategy: all-balanced on the 8x H100 node")
        self.set_strategy("mixed")
        want = {"nvidia.com/mig-1g.10gb.count": "16", "nvidia.com/mig-2g.20gb.count": "8"}
        want["nvidia.com/mig-3g.40gb.count"] = "8"

        def published(labels: dict[str, str]) -> bool:
            return labels.get("nvidia.com/mig.strategy") == "mixed" and all(labels.get(k) == v for k, v in want.items())

        self.relabel(H100, "all-balanced", published, "GFD publishing 2/1/1 per GPU x 8 (mixed)")
        labels = self.print_labels(H100, r"nvidia\.com/(mig\.config|mig\.strategy|mig-.*\.count)")
        for key, value in want.items():
            expect(labels.get(key) == value, f"{key}={value} (2/1/1 per GPU x 8): {labels}")
        expect("nvidia.com/gpu.count" not in labels or labels["nvidia.com/gpu.count"] == "8", f"mixed: {labels}")

    def workflow_4_reconfigure(self) -> None:
        self.title("4. Reconfigure: single strategy, all-3g.40gb; the MIG manager's logs show the steps")
        self.set_strategy("single")

        def published(labels: dict[str, str]) -> bool:
            return (
                labels.get("nvidia.com/mig.strategy") == "single"
                and labels.get("nvidia.com/gpu.count") == "16"
                and labels.get("nvidia.com/gpu.product", "").endswith("-MIG-3g.40gb")
            )

        self.relabel(H100, "all-3g.40gb", published, "GFD publishing 16 3g.40gb devices")
        labels = self.print_labels(H100, r"nvidia\.com/(mig\.config|mig\.strategy|gpu\.(count|product|slices))")
        expect(labels.get("nvidia.com/gpu.count") == "16", f"gpu.count=16 (8 GPUs x 2): {labels}")
        expect(labels.get("nvidia.com/gpu.slices.gi") == "3", f"gpu.slices.gi=3: {labels}")
        expect(labels.get("nvidia.com/gpu.slices.ci") == "3", f"gpu.slices.ci=3: {labels}")
        pod = self.kubectl(
            "get",
            "pods",
            "-n",
            NS,
            "-l",
            "app=nvidia-mig-manager",
            "--field-selector",
            f"spec.nodeName={H100}",
            "-o",
            "name",
            echo=False,
        ).strip()
        logs = self.kubectl("logs", "-n", NS, "-l", "app=nvidia-mig-manager", "-c", "nvidia-mig-manager", output=False)
        self.show(logs)
        steps = self.kubectl("logs", "-n", NS, pod, "-c", "nvidia-mig-manager", "--tail=-1", echo=False)
        for step in (
            "Changed the nvidia.com/mig.config.state node label to pending",
            "Applying the selected MIG config to the node: config=all-3g.40gb",
            "Changed the nvidia.com/mig.config.state node label to success: config=all-3g.40gb",
        ):
            expect(step in logs or step in steps, f"the MIG manager's log of {H100} shows {step!r}:\n{steps[-3000:]}")

    def workflow_5_helm_config(self) -> None:
        self.title("5. A custom MIG config through Helm values, mixed strategy, five-1g-one-2g")
        values = self.values_file(
            "custom-mig-config-values",
            {
                "mig": {"strategy": "mixed"},
                "migManager": {
                    "config": {
                        "create": True,
                        "name": "custom-mig-config",
                        "data": {"config.yaml": FIVE_ONE_CONFIG},
                    }
                },
            },
        )
        # no --wait: until the node is relabelled below, it names a config the custom ConfigMap does not define, so
        # the ClusterPolicy reports MigConfigInvalid (not ready) and `--wait` would wait for its timeout
        self.helm("upgrade", self.release_name(), CHART, "-n", NS, "--reuse-values", "-f", values, output=False)
        self.rollout()
        want = {"nvidia.com/mig-1g.10gb.count": "40", "nvidia.com/mig-2g.20gb.count": "8"}

        def published(labels: dict[str, str]) -> bool:
            return (
                labels.get("nvidia.com/mig.strategy") == "mixed"
                and all(labels.get(k) == v for k, v in want.items())
                and "nvidia.com/mig-3g.40gb.count" not in labels
            )

        self.relabel(H100, "five-1g-one-2g", published, "GFD publishing 5 1g.10gb and 1 2g.20gb per GPU x 8")
        labels = self.print_labels(H100, r"nvidia\.com/(mig\.config|mig\.strategy|mig-.*\.count)")
        for key, value in want.items():
            expect(labels.get(key) == value, f"{key}={value} (5 and 1 per GPU x 8): {labels}")
        inventory = json.loads(self.annotations(H100)[INVENTORY])
        for gpu in inventory["gpus"]:
            expect(gpu.get("migDevices") == {"1g.10gb": 5, "2g.20gb": 1}, f"GPU {gpu['index']}: {gpu}")
        wait_for(self.policy_ready, "the ClusterPolicy Ready once every node names a config of the custom ConfigMap")
        self.kubectl("get", "clusterpolicies.nvidia.com", "cluster-policy")

    def workflow_6_kubectl_config(self) -> None:
        self.title("6. A custom ConfigMap created with kubectl, the ClusterPolicy patched to use it")
        self.kubectl("create", "configmap", KUBECTL_CONFIG, "-n", NS, f"--from-file=config.yaml={EXAMPLE_CONFIG}")
        patch = json.dumps([{"op": "add", "path": "/spec/migManager/config/name", "value": KUBECTL_CONFIG}])
        self.kubectl("patch", "clusterpolicies.nvidia.com/cluster-policy", "--type=json", f"-p={patch}")
        self.rollout()
        want = {"nvidia.com/mig-1g.10gb.count": "28", "nvidia.com/mig-7g.80gb.count": "4"}

        def published(labels: dict[str, str]) -> bool:
            return all(labels.get(k) == v for k, v in want.items()) and "nvidia.com/mig-2g.20gb.count" not in labels

        self.relabel(
            H100, "half-inference-half-training", published, "GPUs 0-3: 7x 1g.10gb, GPUs 4-7: 1x 7g.80gb (mixed)"
        )
        self.print_labels(H100, r"nvidia\.com/(mig\.config|mig\.strategy|mig-.*\.count)")

    def workflow_7_disable(self) -> None:
        self.title("7. all-disabled turns MIG off again")

        def published(labels: dict[str, str]) -> bool:
            return not any(re.fullmatch(r"nvidia\.com/mig-.*\.count", k) for k in labels)

        self.relabel(H100, "all-disabled", published, "no MIG devices published")
        self.print_labels(H100, r"nvidia\.com/(mig\.config|mig\.strategy|mig-|gpu\.(count|product))")
        inventory = json.loads(self.annotations(H100)[INVENTORY])
        for gpu in inventory["gpus"]:
            expect(not gpu.get("migEnabled") and not gpu.get("migDevices"), f"GPU {gpu['index']} MIG off: {gpu}")

    def workflow_8_preinstalled_drivers(self) -> None:
        self.title("8. Preinstalled drivers: driver.enabled=false and a custom gpuClientsConfig")
        values = self.values_file(
            "preinstalled-driver-values",
            {
                "driver": {"enabled": False},
                "migManager": {
                    "config": {"create": False, "name": ""},  # back to the operator's default MIG configs
                    "env": [{"name": "MIG_MANAGER_MODE_CHANGE_DELAY", "value": "0"}],
                    "gpuClientsConfig": {
                        "create": True,
                        "name": CLIENTS_CONFIG,
                        "data": {"clients.yaml": CLIENTS_YAML},
                    },
                },
            },
        )
        self.helm(
            "upgrade", self.release_name(), CHART, "-n", NS, "--reuse-values", "-f", values, "--wait", output=False
        )
        self.rollout()
        name = (self.policy()["spec"]["migManager"].get("config") or {}).get("name")
        expect(not name, f"the ClusterPolicy back on the default MIG configs: config.name={name!r}")
        mark = len(self.host_log(H100))
        before = self.host_units(H100)
        for unit in CLIENTS:
            expect(before[unit]["active"] == "active", f"{H100}: {unit} active before: {before[unit]}")
        self.say(f"host units of {H100} before: " + ", ".join(f"{u}={before[u]['active']}" for u in CLIENTS))

        def published(labels: dict[str, str]) -> bool:
            return labels.get("nvidia.com/mig-1g.10gb.count") == "56"

        self.relabel(H100, "all-1g.10gb", published, "7 1g.10gb per GPU published")
        log = self.host_log(H100)[mark:]
        self.say(f"the simulated host's systemd log of {H100} (host-services.json) during the change:")
        self.show("\n".join(json.dumps(entry) for entry in log))
        after = self.host_units(H100)
        for unit in CLIENTS:
            ops = [e["op"] for e in log if e.get("unit") == unit]
            expect(
                ops[:1] == ["stop"] and ops[-1:] == ["start"] and ops.count("stop") == ops.count("start"),
                f"{unit} stopped during the change and started after: {ops}",
            )
            expect(after[unit]["active"] == "active", f"{unit} running again: {after[unit]}")
        untouched = [e for e in log if e.get("unit") not in (*CLIENTS, "kubelet.service") and e.get("unit")]
        expect(not untouched, f"only the configured clients (and the kubelet) are touched: {untouched}")
        self.say(f"host units of {H100} after: " + ", ".join(f"{u}={after[u]['active']}" for u in CLIENTS))
        pod = self.kubectl(
            "get", "pods", "-n", NS, "-l", "app=nvidia-mig-manager", "--field-selector",
            f"spec.nodeName={H100}", "-o", "name", echo=False,
        ).strip()  # fmt: skip
        logs = self.kubectl("logs", "-n", NS, pod, "-c", "nvidia-mig-manager", "--tail=-1", echo=False)
        run = logs[logs.rfind("node label to pending") :]  # this run's lines
        lines = [ln for ln in run.splitlines() if "host GPU client" in ln or "Applying the selected" in ln]
        self.say(f"$ kubectl logs -n {NS} {pod} -c nvidia-mig-manager | grep -E 'host GPU client|Applying'")
        self.show("\n".join(lines[-12:]))
        first_stop = run.find("Shutting down host GPU client")
        apply_at = run.find("Applying the selected MIG config to the node: config=all-1g.10gb")
        restart = run.find("Restarting host GPU client", max(apply_at, 0))
        expect(0 <= first_stop < apply_at < restart, "the logs: clients shut down, config applied, clients restarted")

    def workflow_9_reboot(self) -> None:
        self.title("9. WITH_REBOOT=true on the A30 passthrough node: rebooting, then success after one reboot")
        values = self.values_file(
            "with-reboot-values",
            {
                "driver": {"enabled": True},
                "migManager": {
                    "env": [
                        {"name": "WITH_REBOOT", "value": "true"},
                        {"name": "MIG_MANAGER_MODE_CHANGE_DELAY", "value": "0"},
                    ]
                },
            },
        )
        self.helm(
            "upgrade", self.release_name(), CHART, "-n", NS, "--reuse-values", "-f", values, "--wait", output=False
        )
        self.rollout()
        boot_before = self.get("node", A30)["status"]["nodeInfo"]["bootID"]
        gpus_before = json.loads((self.sim.node_dir(A30) / "gpus.json").read_text())
        reboots_before = int((gpus_before.get("counters") or {}).get("reboots", 0))
        self.say(f"{A30}: bootID {boot_before}")

        def published(labels: dict[str, str]) -> bool:
            strategy = labels.get("nvidia.com/mig.strategy")
            if strategy == "mixed":
                return labels.get("nvidia.com/mig-1g.6gb.count") == "8"
            return labels.get("nvidia.com/gpu.count") == "8"

        with self.watch_state(A30) as watch:
            self.kubectl("label", "nodes", A30, f"{CONFIG}=all-1g.6gb", "--overwrite")
            wait_for(
                lambda: watch.saw(("all-1g.6gb", "rebooting"), ("all-1g.6gb", "success")),
                f"{A30}: all-1g.6gb rebooting, then success",
            )
        wait_for(lambda: published(self.labels(A30)), f"{A30}: 4 1g.6gb devices per A30 published")
        self.print_labels(A30, r"nvidia\.com/(mig\.config|mig\.strategy|mig-.*\.count|gpu\.count)")
        boot_after = self.get("node", A30)["status"]["nodeInfo"]["bootID"]
        gpus_after = json.loads((self.sim.node_dir(A30) / "gpus.json").read_text())
        reboots = int((gpus_after.get("counters") or {}).get("reboots", 0)) - reboots_before
        self.say(f"{A30}: bootID {boot_after}, simulated reboots during the change: {reboots}")
        expect(reboots == 1, f"exactly one simulated reboot, got {reboots}")
        expect(boot_after != boot_before, f"a new boot id: {boot_before} -> {boot_after}")
        events = self.node_events(A30, "MigConfigRebooting")
        expect(len(events) == 1, f"one MigConfigRebooting Event on {A30}: {events}")
        self.kubectl(
            "get", "events", "-A", "--field-selector", f"involvedObject.kind=Node,involvedObject.name={A30}",
            "--sort-by=.lastTimestamp",
        )  # fmt: skip

    def workflow_10_infeasible(self) -> None:
        self.title("10. An infeasible custom geometry: failed, nothing touched")
        # the ConfigMap of workflow 6 (examples/custom-mig-config.yaml) holds three-2g-two-1g: 8 slices on 7
        if (self.policy()["spec"]["migManager"].get("config") or {}).get("name") != KUBECTL_CONFIG:
            patch = json.dumps([{"op": "add", "path": "/spec/migManager/config/name", "value": KUBECTL_CONFIG}])
            self.kubectl("patch", "clusterpolicies.nvidia.com/cluster-policy", "--type=json", f"-p={patch}")
            self.rollout()
        self.relabel(H100, "five-1g-one-2g", lambda _: True, "a valid custom geometry first")
        before = self.labels(H100)
        expect(before.get(STATE) == "success", f"{H100} settled before: {before.get(STATE)}")
        geometry = json.loads(self.annotations(H100)[INVENTORY])["gpus"]
        gates = {g: before[g] for g in GATES if g in before}
        with self.watch_state(H100) as watch:
            self.kubectl("label", "nodes", H100, f"{CONFIG}=three-2g-two-1g", "--overwrite")
            wait_for(lambda: watch.saw(("three-2g-two-1g", "failed")), f"{H100}: three-2g-two-1g failed")
        labels = self.print_labels(H100, r"nvidia\.com/(mig\.config|gpu\.deploy\.)")
        reason = self.annotations(H100).get(REASON, "")
        jsonpath = "{.metadata.annotations.nvidia\\.com/mig\\.config\\.state\\.reason}"
        self.say(f"$ kubectl get node {H100} -o jsonpath='{jsonpath}'")
        self.show(reason)
        expect("three-2g-two-1g" in reason, f"the reason names the config: {reason!r}")
        for gate, value in gates.items():
            expect(labels.get(gate) == value, f"{gate} back to {value}: {labels.get(gate)}")
        expect(all(v == "true" for v in gates.values()), f"every gate true: {gates}")
        after = json.loads(self.annotations(H100)[INVENTORY])["gpus"]
        expect(after == geometry, f"the previous geometry intact:\n{geometry}\n{after}")
        wait_for(lambda: self.node_events(H100, "MigConfigInvalid"), f"a MigConfigInvalid Event on {H100}")
        self.kubectl(
            "get", "events", "-A", "--field-selector",
            f"involvedObject.kind=Node,involvedObject.name={H100},reason=MigConfigInvalid",
        )  # fmt: skip

        finding = f"node {H100}, config three-2g-two-1g of ConfigMap {NS}/{KUBECTL_CONFIG}"

        def invalid() -> dict[str, Any]:
            conditions = (self.policy().get("status") or {}).get("conditions") or []
            found = (c for c in conditions if c.get("reason") == "MigConfigInvalid" and finding in c.get("message", ""))
            return dict(next(found, {}))

        condition = wait_for(invalid, f"the ClusterPolicy's MigConfigInvalid condition: {finding}: ...")
        self.kubectl("get", "clusterpolicies.nvidia.com", "cluster-policy")
        jq = '.status.conditions[] | select(.type == "Error")'
        self.say(f"$ kubectl get clusterpolicies.nvidia.com cluster-policy -o json | jq '{jq}'")
        self.show(json.dumps(condition, indent=2))
        expect(condition.get("type") == "Error" and condition.get("status") == "True", f"Error=True: {condition}")
