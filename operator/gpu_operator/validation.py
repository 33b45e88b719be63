"""Checks of a custom MIG config against the nodes that will use it. Pure; it reports and never blocks.

A referenced ConfigMap that is missing, lacks `config.yaml`, does not parse, lacks a config name some node is labelled
with, or holds a geometry that cannot fit that node's GPUs (from the agent's inventory annotation) is a finding; the
operator turns findings into the `MigConfigInvalid` condition and a Warning Event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu_operator.errors import InventoryError
from gpu_operator.inventory import INVENTORY_ANNOTATION, node_gpus, parse_inventory
from gpu_operator.nodes import DEPLOY_MIG_MANAGER, MIG_CONFIG
from gpu_operator.policy import DEFAULT_GPU_CLIENTS_CONFIG_MAP, ClusterPolicySpec
from mig_manager.errors import MigManagerError, SpecError
from mig_manager.planner import plan_node
from mig_manager.spec import MigPartedSpec, load_spec, parse_gpu_clients

CONFIG_KEY = "config.yaml"


@dataclass(frozen=True)
class NodeFacts:
    """What validation and labelling read from a Node."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> NodeFacts:
        meta = body.get("metadata") or {}
        return cls(meta.get("name", ""), dict(meta.get("labels") or {}), dict(meta.get("annotations") or {}))


@dataclass(frozen=True)
class Finding:
    message: str
    node: str | None = None
    config: str | None = None

    def __str__(self) -> str:
        return self.message


def _uses_mig_manager(node: NodeFacts) -> bool:
    return bool(node.labels.get(MIG_CONFIG)) and node.labels.get(DEPLOY_MIG_MANAGER) != "false"


def _check_node(spec: MigPartedSpec, source: str, node: NodeFacts) -> list[Finding]:
    config = node.labels[MIG_CONFIG]
    if config not in spec.mig_configs:
        known = ", ".join(spec.mig_configs) or "none"
        return [
            Finding(
                f"node {node.name} is labelled {MIG_CONFIG}={config}, which {source} does not define "
                f"(it defines: {known})",
                node.name,
                config,
            )
        ]
    text = node.annotations.get(INVENTORY_ANNOTATION)
    if not text:
        return []  # nothing known about the GPUs yet: the agent publishes them when it starts
    try:
        gpus = node_gpus(parse_inventory(text))
    except InventoryError:
        return []  # the agent's output, not the user's config: logged by the operator, not a config finding
    try:
        result = plan_node(spec, config, gpus)
    except MigManagerError as exc:
        return [Finding(f"node {node.name}, config {config} of {source}: {exc}", node.name, config)]
    return [
        Finding(f"node {node.name}, config {config} of {source}: {g.gpu.describe()}: {g.error}", node.name, config)
        for g in result.gpus
        if g.error is not None
    ]


def validate_mig_config(
    policy: ClusterPolicySpec,
    namespace: str,
    configmap: Mapping[str, Any] | None,
    nodes: Sequence[NodeFacts],
) -> list[Finding]:
    """Findings about the policy's custom MIG ConfigMap (`configmap` is its body, None when it does not exist)."""
    name = policy.mig_manager.custom_config_name()
    if name is None or not policy.mig_manager.is_enabled():
        return []
    source = f"ConfigMap {namespace}/{name}"
    if configmap is None:
        return [Finding(f"{source} (migManager.config.name) does not exist")]
    data = configmap.get("data") or {}
    if CONFIG_KEY not in data:
        keys = ", ".join(sorted(data)) or "none"
        return [Finding(f"{source} has no key {CONFIG_KEY} (keys: {keys})")]
    try:
        spec = load_spec(str(data[CONFIG_KEY]), source=f"{source} key {CONFIG_KEY}").spec
    except MigManagerError as exc:
        return [Finding(f"{source} does not parse: {exc}")]
    findings: list[Finding] = []
    for node in sorted(nodes, key=lambda n: n.name):
        if _uses_mig_manager(node):
            findings.extend(_check_node(spec, source, node))
    return findings


def summarize(findings: Sequence[Finding], limit: int = 5) -> str:
    """One message for a condition: the first few findings and how many more there are."""
    shown = [f.message for f in findings[:limit]]
    rest = len(findings) - len(shown)
    if rest > 0:
        shown.append(f"and {rest} more")
    return "; ".join(shown)


CLIENTS_KEY = "clients.yaml"


def validate_gpu_clients_config(
    policy: ClusterPolicySpec, namespace: str, configmap: Mapping[str, Any] | None
) -> list[Finding]:
    """Findings about a custom GPU-clients ConfigMap (`migManager.gpuClientsConfig.name`): present, with a
    `clients.yaml` holding `systemd-services`, a list of unit names."""
    name = policy.mig_manager.gpu_clients_config_map()
    if name == DEFAULT_GPU_CLIENTS_CONFIG_MAP or not policy.mig_manager.is_enabled():
        return []
    source = f"ConfigMap {namespace}/{name}"
    if configmap is None:
        return [Finding(f"{source} (migManager.gpuClientsConfig.name) does not exist")]
    data = configmap.get("data") or {}
    if CLIENTS_KEY not in data:
        keys = ", ".join(sorted(data)) or "none"
        return [Finding(f"{source} has no key {CLIENTS_KEY} (keys: {keys})")]
    try:
        parse_gpu_clients(str(data[CLIENTS_KEY]), f"{source} key {CLIENTS_KEY}")
    except SpecError as exc:
        return [Finding(str(exc))]
    return []
