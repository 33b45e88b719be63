"""Chaos rounds against the simulated GPU cluster (issue 10): random relabelling, killed agents and operator, API and
NVML faults, and after every round the invariants that make a node trustworthy.

The cluster is kubesim's default topology (8x H100, 4x A100 40GB + 4x A100 80GB, 2x A30 passthrough, a CPU node) with
the chart installed by the real helm (preinstalled drivers, so host GPU clients are stopped and started too; reboots
allowed, so the A30's MIG mode changes reboot the node). The operator and the node agents run as processes.

A round, planned from a seeded generator (`plan_round`, pure, so a failing round is reproduced by its seed):

1. snapshot each MIG node's GPUs and host units;
2. inject faults: kubesim API errors (500, 409, 503) and dropped connections on the writes the agent and operator
   make, cut watches, NVML errors in a node's simulated GPUs (transient: a few calls; or lasting until the round ends);
3. relabel one to three nodes (a config of the node's config file, or a name the file does not have);
4. kill agents (on a relabelled node, at a random moment of its run) and the operator;
5. remove the API faults, wait (bounded) until every node has settled, check the invariants; remove the NVML faults,
   wait until every node has settled for good (no retry pending), and check them again.

Invariants (`check_node`, pure, over plain data): the node is not `pending` or `rebooting` and has no run in progress
beyond the timeouts; every `nvidia.com/gpu.deploy.*` gate is `true`; host units that were active are active; when the
state is `success` the GPUs hold exactly the node's config (GPUs the config does not select are unchanged); when it is
`failed` no GPU changed.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from kubesim.server import Config, KubeSim
from kubesim.testing import Tools, cluster_config, kube_client
from mig_manager.catalog import CI_PROFILE_CONSTANTS, ProfileTable, default_catalog
from mig_manager.devices import simulated

NS = "gpu-operator"
CHART = "charts/gpu-operator"
MIG_NODES = ("node-h100", "node-a100", "node-a30")
CONFIG = "nvidia.com/mig.config"
STATE = "nvidia.com/mig.config.state"
REASON = "nvidia.com/mig.config.state.reason"
JOURNAL = "nvidia.com/mig.config.journal"
RESTORE = "nvidia.com/mig.config.restore"  # the agent's record of a geometry it still has to put back
GATE_PREFIX = "nvidia.com/gpu.deploy."
GATES = (
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm",
    "nvidia.com/gpu.deploy.mig-manager",
)
UNKNOWN_CONFIG = "no-such-config"
# The agent's timings in the chaos cluster (its documented environment): short back-off and waits, so a round ends in
# seconds; SETTLE_TIMEOUT is the bound on a node staying pending: the pod wait plus a run's retries and a reboot.
AGENT_ENV = {
    "WITH_REBOOT": "true",
    "MIG_MANAGER_BACKOFF_INITIAL": "0.2",
    "MIG_MANAGER_BACKOFF_MAX": "1",
    "MIG_MANAGER_MAX_RETRIES": "3",
    "MIG_MANAGER_POD_WAIT_TIMEOUT": "20",
    "MIG_MANAGER_SERVICE_STOP_TIMEOUT": "10",
    "MIG_MANAGER_SERVICE_START_TIMEOUT": "10",
    "MIG_MANAGER_MODE_CHANGE_DELAY": "0",
    "MIG_MANAGER_API_TIMEOUT": "5",
    "MIG_MANAGER_RESYNC_PERIOD": "30",
    "MIG_MANAGER_CONFIG_POLL_INTERVAL": "1",
    "MIG_MANAGER_METRICS_PORT": "0",
}
SETTLE_TIMEOUT = 60.0
API_FAULT_SECONDS = 0.5
NVML_OPS = (
    "create_gpu_instance",
    "create_compute_instance",
    "destroy_gpu_instance",
    "destroy_compute_instance",
    "set_mig_mode",
    "reset",
    "gpu_instances",
)
CI_SLICES = {profile_id: slices for slices, profile_id in CI_PROFILE_CONSTANTS.items()}
NVML_CODES = ("UNKNOWN", "INSUFFICIENT_RESOURCES", "IN_USE", "TIMEOUT", "GPU_IS_LOST")


# ---------------------------------------------------------------------------------------------------------------------
# Plain data


@dataclass(frozen=True)
class Action:
    """One thing a round does. `kind`: label, kill-agent, kill-operator, api-fault, cut-watches, nvml-fault."""

    kind: str
    node: str = ""
    value: str = ""
    delay: float = 0.0  # seconds after the relabelling (kills)
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = f" {dict(self.detail)}" if self.detail else ""
        where = f" {self.node}" if self.node else ""
        value = f"={self.value}" if self.value else ""
        at = f" at +{self.delay:.2f}s" if self.delay else ""
        return f"{self.kind}{where}{value}{at}{extra}"


@dataclass(frozen=True)
class GpuSnapshot:
    """What a GPU holds: MIG mode (current, pending) and its instances as sorted (profile name, placement start) with
    their compute instances' names."""

    index: int
    device_id: str
    mode: str
    pending: str
    instances: tuple[tuple[str, int, tuple[str, ...]], ...]

    def devices(self) -> dict[str, int]:
        """The MIG devices, as mig-parted counts them (`1g.10gb`, `1c.2g.20gb`)."""
        counts: dict[str, int] = {}
        for _, _, cis in self.instances:
            for name in cis:
                counts[name] = counts.get(name, 0) + 1
        return counts


@dataclass(frozen=True)
class NodeView:
    """What the invariants look at for one node: its labels and annotations, GPUs and host units."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    gpus: tuple[GpuSnapshot, ...]
    units: Mapping[str, str]  # unit -> active state


# ---------------------------------------------------------------------------------------------------------------------
# The functional core: planning, reading the simulated GPUs, the invariants


def plan_round(rng: random.Random, configs: Mapping[str, Sequence[str]]) -> list[Action]:
    """The actions of one round: faults first, then relabelling, then kills (each kill at a moment of the runs)."""
    actions: list[Action] = []
    if rng.random() < 0.35:
        verb = rng.choice(("patch", "create", "update", "delete", "list", "get"))
        resource = rng.choice(("nodes", "events", "pods", "configmaps", "*"))
        status = rng.choice((500, 409, 503))
        mode = "drop" if rng.random() < 0.2 else "error"
        detail: dict[str, Any] = {"verb": verb, "resource": resource, "action": mode, "status": status}
        detail.update(probability=round(rng.uniform(0.2, 0.8), 2), count=rng.randint(1, 6))
        actions.append(Action("api-fault", detail=detail))
    if rng.random() < 0.15:
        actions.append(Action("cut-watches", delay=round(rng.uniform(0.0, 0.5), 2)))
    nodes = rng.sample(sorted(configs), rng.randint(1, 3))
    for node in nodes:
        if rng.random() < 0.25:
            op = rng.choice(NVML_OPS)
            times = rng.choice((1, 2, -1))  # -1: fails until the round removes it
            nvml: dict[str, Any] = {"op": op, "code": rng.choice(NVML_CODES), "times": times}
            if rng.random() < 0.5:
                nvml["gpu"] = rng.randrange(2)  # every MIG node has at least two GPUs
            actions.append(Action("nvml-fault", node=node, detail=nvml))
    for node in nodes:
        value = UNKNOWN_CONFIG if rng.random() < 0.05 else rng.choice(list(configs[node]))
        actions.append(Action("label", node=node, value=value))
    for node in nodes:
        if rng.random() < 0.15:
            actions.append(Action("kill-agent", node=node, delay=round(rng.uniform(0.0, 0.6), 2)))
    if rng.random() < 0.08:
        actions.append(Action("kill-operator", delay=round(rng.uniform(0.0, 0.6), 2)))
    return actions


def _tables() -> dict[str, ProfileTable]:
    return {model.key: model.table for model in default_catalog().models}


def snapshot_gpus(state: Mapping[str, Any], tables: Mapping[str, ProfileTable]) -> tuple[GpuSnapshot, ...]:
    """The GPUs of a simulated host state (`mig_manager.devices.simulated`'s JSON), read without the backend (so that
    injected faults neither fire nor count)."""
    out = []
    for gpu in state["gpus"]:
        instances: list[tuple[str, int, tuple[str, ...]]] = []
        table = tables.get(str(gpu.get("model")))
        for gi in gpu.get("gpu_instances") or []:
            profile = (
                next((p for p in table.gpu_instance_profiles if p.id == gi["profile_id"]), None) if table else None
            )
            gi_name = str(profile.name) if profile else f"gi-profile-{gi['profile_id']}"
            cis = []
            for ci in gi.get("compute_instances") or []:
                slices = CI_SLICES.get(int(ci["profile_id"]))
                if profile is not None and slices is not None and slices != profile.slices:
                    cis.append(f"{slices}c.{gi_name}")
                else:
                    cis.append(gi_name)
            instances.append((gi_name, int(gi["placement"]["start"]), tuple(sorted(cis))))
        mode = gpu.get("mig_mode") or {}
        out.append(
            GpuSnapshot(
                index=int(gpu["index"]),
                device_id=str(gpu.get("pci_device_id", "")).lower(),
                mode=str(mode.get("current", "disabled")),
                pending=str(mode.get("pending", "disabled")),
                instances=tuple(sorted(instances)),
            )
        )
    return tuple(out)


def _filters(entry: Mapping[str, Any]) -> list[str]:
    raw = entry.get("device-filter")
    if raw is None:
        return []
    return [str(f).lower() for f in ([raw] if isinstance(raw, str) else raw)]


def expected_entries(config: Mapping[str, Any], gpus: Sequence[GpuSnapshot]) -> dict[int, Mapping[str, Any]]:
    """For each GPU index, the config entry that selects it (the last one, as mig-parted applies them in order)."""
    chosen: dict[int, Mapping[str, Any]] = {}
    for entry in config:
        devices = entry.get("devices", "all")
        filters = _filters(entry)
        for gpu in gpus:
            if devices != "all" and gpu.index not in devices:
                continue
            if filters and gpu.device_id not in filters:
                continue
            chosen[gpu.index] = entry
    return chosen


def check_node(
    view: NodeView,
    before: NodeView,
    configs: Mapping[str, Any],
    *,
    final: bool,
) -> list[str]:
    """The invariants for one settled node; each violation as a sentence. `before` is the node at the round's start,
    `configs` its config file's `mig-configs`. `final`: no retry may be pending any more."""
    problems: list[str] = []
    name = view.name
    state = view.labels.get(STATE, "")
    label = view.labels.get(CONFIG, "")
    reason = view.annotations.get(REASON, "")
    if state not in ("success", "failed"):
        problems.append(f"{name}: state {state!r} (reason {reason!r}) beyond the timeouts")
    if JOURNAL in view.annotations:
        problems.append(f"{name}: a run is still recorded in progress: {view.annotations[JOURNAL][:200]}")
    if final and state == "failed" and "retrying in" in reason:
        problems.append(f"{name}: still retrying after the faults were removed: {reason}")
    for gate in GATES:
        if view.labels.get(gate) != "true":
            problems.append(f"{name}: gate {gate}={view.labels.get(gate)!r}, expected 'true'")
    for key, value in view.labels.items():
        if key.startswith(GATE_PREFIX) and value == "paused-for-mig-change":
            problems.append(f"{name}: gate {key} left paused")
    for unit, active in before.units.items():
        if active == "active" and view.units.get(unit) != "active":
            problems.append(f"{name}: host unit {unit} was active and is now {view.units.get(unit)!r}")
    before_gpus = {g.index: g for g in before.gpus}
    # While an NVML fault still fires, putting the GPUs back can itself fail: allowed only when the agent says so or
    # records the geometry to put back (and keeps retrying); once the faults are gone (`final`) a failed node must
    # have the GPUs it had before the round.
    restore_failed = not final and ("FAILED" in reason or RESTORE in view.annotations)
    if state == "failed" and not restore_failed:
        for gpu in view.gpus:
            old = before_gpus.get(gpu.index)
            if old is not None and (gpu.mode, gpu.instances) != (old.mode, old.instances):
                problems.append(
                    f"{name}: state failed ({reason}) but GPU {gpu.index} changed: "
                    f"{old.mode} {old.instances} -> {gpu.mode} {gpu.instances}"
                )
    elif state == "success":
        if label not in configs:
            problems.append(f"{name}: state success for {label!r}, which the config file does not have ({reason})")
            return problems
        chosen = expected_entries(configs[label], view.gpus)
        for gpu in view.gpus:
            entry = chosen.get(gpu.index)
            if entry is None:
                old = before_gpus.get(gpu.index)
                if old is not None and (gpu.mode, gpu.instances) != (old.mode, old.instances):
                    problems.append(f"{name}: GPU {gpu.index} is not selected by {label!r} but changed")
                continue
            want_mode = "enabled" if entry.get("mig-enabled") else "disabled"
            want = {str(k): int(v) for k, v in (entry.get("mig-devices") or {}).items() if int(v)}
            if gpu.mode != want_mode or gpu.pending != want_mode:
                problems.append(
                    f"{name}: GPU {gpu.index} MIG mode {gpu.mode}/{gpu.pending}, {label!r} wants {want_mode}"
                )
            have = gpu.devices()
            if want_mode == "enabled" and have != want:
                problems.append(f"{name}: GPU {gpu.index} holds {have}, {label!r} wants {want} ({reason})")
            if want_mode == "disabled" and gpu.instances:
                problems.append(f"{name}: GPU {gpu.index} has MIG disabled in {label!r} but holds {gpu.instances}")
    return problems


def settled(view: NodeView, *, final: bool) -> bool:
    """The node has finished with its label: no run in progress, and a state that speaks of the current config (or a
    failure to read the config or GPUs); with `final`, no retry pending either."""
    state = view.labels.get(STATE, "")
    reason = view.annotations.get(REASON, "")
    label = view.labels.get(CONFIG, "")
    if state not in ("success", "failed") or JOURNAL in view.annotations:
        return False
    if final and "retrying in" in reason:
        return False
    if f"'{label}'" in reason:
        return True
    return state == "failed" and reason.startswith(("cannot read the GPUs", "cannot use the MIG config file"))


# ---------------------------------------------------------------------------------------------------------------------
# The shell: the cluster, the actions, the rounds


@dataclass
class RoundReport:
    number: int
    actions: list[Action]
    seconds: float
    violations: list[str]
    states: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Chaos:
    """A simulated GPU cluster with the chart installed, and the rounds run against it."""

    sim: KubeSim
    tools: Tools
    seed: int
    log: Callable[[str], None] = print
    rng: random.Random = field(init=False)
    core: Any = field(init=False)
    tables: dict[str, ProfileTable] = field(init=False)
    configs: dict[str, Any] = field(init=False, default_factory=dict)
    node_configs: dict[str, list[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.core = client.CoreV1Api(kube_client(self.sim))
        self.tables = _tables()

    # -- set-up ------------------------------------------------------------------------------------------------------

    def install(self) -> None:
        args = ["install", "chaos", CHART, "-n", NS, "--create-namespace", "--wait", "--timeout", "180s"]
        args += ["--set", "mig.strategy=mixed", "--set", "driver.enabled=false"]
        for i, (key, value) in enumerate(AGENT_ENV.items()):
            args += ["--set", f"migManager.env[{i}].name={key}", "--set-string", f"migManager.env[{i}].value={value}"]
        self.tools.helm(*args)
        ok, views = self.settle(final=True, timeout=180)
        assert ok, f"the agents did not settle after the install: {describe(views)}"
        cm = self.retry(lambda: self.core.read_namespaced_config_map("default-mig-parted-config", NS))
        self.configs = dict(yaml.safe_load(cm.data["config.yaml"])["mig-configs"])
        for node in MIG_NODES:
            gpus = self.view(node).gpus
            self.node_configs[node] = sorted(
                name for name, entries in self.configs.items() if expected_entries(entries, gpus)
            )

    # -- reading -----------------------------------------------------------------------------------------------------

    def retry(self, call: Callable[[], Any], attempts: int = 20) -> Any:
        """The harness's own API calls, retried as a user retries kubectl through the faults it injects."""
        for i in range(attempts):
            try:
                return call()
            except Exception:  # the injected faults: ApiException, dropped connections
                if i == attempts - 1:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def view(self, node: str) -> NodeView:
        """The Node with its GPUs and host units as they were while the Node did not change (the agent writes the
        Node before it touches the GPUs, so an unchanged resourceVersion around the reads makes them consistent)."""
        folder = self.sim.node_dir(node)
        obj = self.retry(lambda: self.core.read_node(node))
        while True:
            state = simulated.read_state(folder / "gpus.json")
            host = json.loads((folder / "host-services.json").read_text())
            again = self.retry(lambda: self.core.read_node(node))
            if again.metadata.resource_version == obj.metadata.resource_version:
                break
            obj = again
        units = {name: str(unit.get("active", "")) for name, unit in (host.get("units") or {}).items()}
        return NodeView(
            node,
            dict(obj.metadata.labels or {}),
            dict(obj.metadata.annotations or {}),
            snapshot_gpus(state, self.tables),
            units,
        )

    def settle(self, *, final: bool, timeout: float = SETTLE_TIMEOUT) -> tuple[bool, dict[str, NodeView]]:
        """Wait (bounded) until every MIG node has settled; the views that showed it (or the last ones)."""
        deadline = time.monotonic() + timeout
        while True:
            views = {n: self.view(n) for n in MIG_NODES}
            if all(settled(v, final=final) for v in views.values()):
                return True, views
            if time.monotonic() >= deadline:
                return False, views
            time.sleep(0.05)

    # -- acting ------------------------------------------------------------------------------------------------------

    def pods(self, selector: str) -> list[Any]:
        return list(self.retry(lambda: self.core.list_namespaced_pod(NS, label_selector=selector)).items)

    def kill_agent(self, node: str) -> None:
        for pod in self.pods("app=nvidia-mig-manager"):
            if pod.spec.node_name == node:
                self.sim.kill_container(NS, pod.metadata.name)

    def agent_log(self, node: str, lines: int = 80) -> str:
        names = [str(p.metadata.name) for p in self.pods("app=nvidia-mig-manager") if p.spec.node_name == node]
        if not names:
            return f"(no agent pod on {node})"
        return str(self.retry(lambda: self.core.read_namespaced_pod_log(names[0], NS, tail_lines=lines)))

    def kill_operator(self) -> None:
        for pod in self.pods("app=gpu-operator"):
            self.sim.kill_container(NS, pod.metadata.name)

    def label(self, node: str, value: str) -> None:
        self.retry(lambda: self.core.patch_node(node, {"metadata": {"labels": {CONFIG: value}}}))

    @contextmanager
    def faults(self, actions: Sequence[Action]) -> Iterator[None]:
        for action in actions:
            if action.kind == "api-fault":
                self.sim.add_fault(**action.detail)
            elif action.kind == "nvml-fault":
                d = action.detail
                simulated.add_fault(
                    self.sim.node_dir(action.node) / "gpus.json", d["op"], d["code"], gpu=d.get("gpu"), times=d["times"]
                )
        try:
            yield
        finally:
            self.sim.clear_faults()

    def clear_nvml_faults(self) -> None:
        for node in MIG_NODES:
            simulated.clear_faults(self.sim.node_dir(node) / "gpus.json")

    def run_round(self, number: int) -> RoundReport:
        started = time.monotonic()
        actions = plan_round(self.rng, self.node_configs)
        before = {n: self.view(n) for n in MIG_NODES}
        violations: list[str] = []
        with self.faults(actions):
            t0 = time.monotonic()
            for action in actions:
                if action.kind == "label":
                    self.label(action.node, action.value)
            for action in sorted((a for a in actions if a.delay or a.kind.startswith(("kill", "cut"))), key=delay_of):
                pause = t0 + action.delay - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # chaos timing: the kill lands at a random moment of the runs
                if action.kind == "kill-agent":
                    self.kill_agent(action.node)
                elif action.kind == "kill-operator":
                    self.kill_operator()
                elif action.kind == "cut-watches":
                    self.sim.cut_watches()
            window_end = t0 + API_FAULT_SECONDS
            if any(a.kind == "api-fault" for a in actions) and window_end > time.monotonic():
                time.sleep(window_end - time.monotonic())  # the API faults last this long into the runs
        acted = time.monotonic()
        first, views = self.settle(final=False)
        timings = {"acting": acted - started, "settling": time.monotonic() - acted}
        for node in MIG_NODES:
            violations += check_node(views[node], before[node], self.configs, final=False)
        if not first and not violations:
            violations.append(f"not settled within {SETTLE_TIMEOUT:.0f}s: {describe(views)}")
        self.clear_nvml_faults()
        if not violations:
            cleared = time.monotonic()
            final, views = self.settle(final=True)
            timings["after-faults"] = time.monotonic() - cleared
            for node in MIG_NODES:
                violations += check_node(views[node], before[node], self.configs, final=True)
            if not final and not violations:
                violations.append(f"not settled for good within {SETTLE_TIMEOUT:.0f}s: {describe(views)}")
        states = {n: views[n].labels.get(STATE, "") for n in MIG_NODES}
        return RoundReport(number, actions, time.monotonic() - started, violations, states, timings)

    def run(self, rounds: int) -> list[RoundReport]:
        reports = []
        for number in range(1, rounds + 1):
            report = self.run_round(number)
            reports.append(report)
            plan = "; ".join(str(a) for a in report.actions)
            outcome = " ".join(f"{n}={s}" for n, s in report.states.items())
            spent = ", ".join(f"{k} {v:.1f}s" for k, v in report.timings.items())
            self.log(f"round {number} ({report.seconds:.1f}s: {spent}): {plan} -> {outcome}")
            for violation in report.violations:
                self.log(f"  VIOLATION: {violation}")
            if report.violations:
                for node in sorted({v.split(":", 1)[0] for v in report.violations if v.startswith("node-")}):
                    self.log(f"  the agent's log on {node}:\n{self.agent_log(node)}")
                break  # the cluster is no longer in a known state; the seed and round reproduce it
        return reports


def delay_of(action: Action) -> float:
    return action.delay


def describe(views: Mapping[str, NodeView]) -> str:
    return "; ".join(
        f"{n} {v.labels.get(CONFIG)!r} state={v.labels.get(STATE)!r} reason={v.annotations.get(REASON, '')!r}"
        f"{' journal' if JOURNAL in v.annotations else ''}"
        for n, v in views.items()
    )


def chaos_config() -> Config:
    """kubesim's default topology with the test timings (fast restarts, short reboots, quick GPU polls)."""
    return cluster_config("default")


def summary(reports: Sequence[RoundReport], seed: int) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for report in reports:
        for action in report.actions:
            kinds[action.kind] = kinds.get(action.kind, 0) + 1
    outcomes: dict[str, int] = {}
    for report in reports:
        for state in report.states.values():
            outcomes[state] = outcomes.get(state, 0) + 1
    seconds = sorted(r.seconds for r in reports)
    return {
        "command": "make soak",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "targets": {"rounds": 1000, "violations": 0},
        "seed": seed,
        "rounds": len(reports),
        "violations": sum(len(r.violations) for r in reports),
        "actions": kinds,
        "node_states": outcomes,
        "round_seconds": {
            "median": seconds[len(seconds) // 2] if seconds else 0.0,
            "max": seconds[-1] if seconds else 0.0,
            "total": sum(seconds),
        },
    }


def write_summary(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
