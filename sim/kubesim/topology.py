"""The simulated cluster's shape: nodes (GPUs, labels, taints, host services) and how images run. Pure.

A topology file (YAML):

```yaml
kind: Topology
defaults: {cpu: "64", memory: 512Gi, driverVersion: "580.95.05", cudaVersion: "13.0", machine: kubesim}
nodes:
  - name: node-h100
    gpus: H100-80GBx8            # mig-parted's --gpus grammar; absent: a node without GPUs
    passthrough: false           # MIG mode changes need a reboot (a VM with passed-through GPUs)
    migEnabled: false            # MIG-capable GPUs start with MIG enabled
    labels: {...}
    annotations: {...}
    taints: [{key: k, value: v, effect: NoSchedule}]
    hostServices: {nvsm.service: {active: active, enabled: enabled, type: simple}}
    hostStateFile: false         # the host has the nvidia-mig-manager systemd drop-in
  - name: gpu-{i}                # `count` repeats a node; {i} is 0, 1, ...
    count: 200
    gpus: A100-80GBx8
images:                          # checked before the built-in rules (IMAGE_KINDS)
  - match: ["registry.example.com/my-agent:*"]
    kind: node-agent             # node-agent | operator | process | device-plugin | gpu-feature-discovery | dcgm |
                                 # dcgm-exporter | pause
    entrypoint: [mig-manager]    # used when the container has no command
```
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kubesim.errors import KubeSimError

IMAGE_KINDS = (
    "node-agent",
    "operator",
    "process",
    "device-plugin",
    "gpu-feature-discovery",
    "nvidia-device-plugin",  # NVIDIA's k8s-device-plugin image: GFD or the plugin, by the container's command
    "dcgm",
    "dcgm-exporter",
    "pause",
)


@dataclass(frozen=True)
class ImageRule:
    match: tuple[str, ...]
    kind: str
    entrypoint: tuple[str, ...] = ()

    def matches(self, image: str) -> bool:
        short = image_name(image)
        return any(fnmatch.fnmatchcase(image, p) or fnmatch.fnmatchcase(short, p) for p in self.match)


def image_name(image: str) -> str:
    """The repository's last path component without tag or digest: `nvcr.io/nvidia/k8s-device-plugin:v0.20.0` ->
    `k8s-device-plugin`."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


# Built-in rules, in order: the project's node agent and operator (any image whose name says so), NVIDIA's images.
DEFAULT_IMAGES: tuple[ImageRule, ...] = (
    ImageRule(("*mig-manager*", "*node-agent*"), "node-agent", ("mig-manager",)),
    ImageRule(("*gpu-operator*",), "operator", ("gpu-operator",)),
    ImageRule(("k8s-device-plugin", "*device-plugin*"), "nvidia-device-plugin", ("nvidia-device-plugin",)),
    ImageRule(("gpu-feature-discovery", "*feature-discovery*"), "gpu-feature-discovery", ("gpu-feature-discovery",)),
    ImageRule(("dcgm-exporter",), "dcgm-exporter"),
    ImageRule(("dcgm",), "dcgm"),
)


def image_kind(image: str, rules: Sequence[ImageRule]) -> ImageRule:
    for rule in rules:
        if rule.matches(image):
            return rule
    return ImageRule(("*",), "pause")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    gpus: str = ""
    passthrough: bool = False
    mig_enabled: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, Any], ...] = ()
    cpu: str = "64"
    memory: str = "512Gi"
    pods: str = "110"
    machine: str = "kubesim"
    driver_version: str = "580.95.05"
    cuda_version: str = "13.0"
    host_services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    host_state_file: bool = False


@dataclass(frozen=True)
class Topology:
    nodes: tuple[NodeSpec, ...] = ()
    images: tuple[ImageRule, ...] = ()

    def image_rules(self, extra: Sequence[ImageRule] = ()) -> list[ImageRule]:
        return [*extra, *self.images, *DEFAULT_IMAGES]


_NODE_KEYS = {
    "name": "name",
    "gpus": "gpus",
    "passthrough": "passthrough",
    "migEnabled": "mig_enabled",
    "labels": "labels",
    "annotations": "annotations",
    "taints": "taints",
    "cpu": "cpu",
    "memory": "memory",
    "pods": "pods",
    "machine": "machine",
    "driverVersion": "driver_version",
    "cudaVersion": "cuda_version",
    "hostServices": "host_services",
    "hostStateFile": "host_state_file",
}


def _node(raw: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> list[NodeSpec]:
    if not isinstance(raw, Mapping):
        raise KubeSimError(f"{where}: a node must be a mapping, got {raw!r}")
    merged = {**defaults, **raw}
    unknown = sorted(set(merged) - set(_NODE_KEYS) - {"count"})
    if unknown:
        raise KubeSimError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_NODE_KEYS))}, count"
        )
    if not merged.get("name"):
        raise KubeSimError(f"{where}: a node needs a name")
    count = int(merged.pop("count", 1))
    kwargs: dict[str, Any] = {}
    for key, attr in _NODE_KEYS.items():
        if key in merged and merged[key] is not None:
            value = merged[key]
            if attr in ("labels", "annotations"):
                value = {str(k): str(v) for k, v in dict(value).items()}
            elif attr == "taints":
                value = tuple(dict(t) for t in value)
            elif attr == "host_services":
                value = {str(k): dict(v or {}) for k, v in dict(value).items()}
            elif attr in ("passthrough", "mig_enabled", "host_state_file"):
                value = bool(value)
            else:
                value = str(value)
            kwargs[attr] = value
    name = str(kwargs.pop("name"))
    if count == 1 and "{i}" not in name:
        return [NodeSpec(name=name, **kwargs)]
    return [
        NodeSpec(name=name.replace("{i}", str(i)) if "{i}" in name else f"{name}-{i}", **kwargs) for i in range(count)
    ]


def parse_topology(doc: Any, where: str = "topology") -> Topology:
    if not isinstance(doc, Mapping):
        raise KubeSimError(f"{where}: expected a mapping with `nodes`, got {type(doc).__name__}")
    defaults = dict(doc.get("defaults") or {})
    nodes: list[NodeSpec] = []
    for i, raw in enumerate(doc.get("nodes") or []):
        nodes.extend(_node(raw, defaults, f"{where}: nodes[{i}]"))
    names = [n.name for n in nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise KubeSimError(f"{where}: duplicate node names: {', '.join(dupes)}")
    images = []
    for i, raw in enumerate(doc.get("images") or []):
        kind = str(raw.get("kind", ""))
        if kind not in IMAGE_KINDS:
            raise KubeSimError(f"{where}: images[{i}]: kind {kind!r} is not one of {', '.join(IMAGE_KINDS)}")
        match = raw.get("match")
        patterns = (match,) if isinstance(match, str) else tuple(str(m) for m in match or ())
        if not patterns:
            raise KubeSimError(f"{where}: images[{i}]: `match` needs at least one image pattern")
        images.append(ImageRule(patterns, kind, tuple(str(a) for a in raw.get("entrypoint") or ())))
    return Topology(tuple(nodes), tuple(images))


def load_topology(path: str | Path) -> Topology:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KubeSimError(f"cannot read topology {p}: {exc}") from None
    return parse_topology(doc, str(p))


def default_topology() -> Topology:
    text = resources.files("kubesim").joinpath("topologies/default.yaml").read_text(encoding="utf-8")
    return parse_topology(yaml.safe_load(text), "default topology")
