"""Manifests from the policy and cluster facts: Jinja2 templates (package data) plus NVIDIA's common transforms. Pure.

`render(spec, facts)` returns the objects of every enabled component, in apply order, each labelled
`app.kubernetes.io/managed-by: gpu-operator` and owned by the ClusterPolicy; what it does not return is pruned.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
import yaml

from gpu_operator.errors import RenderError
from gpu_operator.policy import API_VERSION, KIND, ClusterPolicySpec, ComponentSpec, EnvVar

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpu-operator"
COMPONENT_LABEL = "app.kubernetes.io/component"

MIG_MANAGER = "mig-manager"
DEVICE_PLUGIN = "device-plugin"
GFD = "gpu-feature-discovery"
DCGM_EXPORTER = "dcgm-exporter"

# Component -> (template, env var on the operator pod giving the image when the policy has none)
COMPONENTS: dict[str, tuple[str, str]] = {
    DEVICE_PLUGIN: ("device-plugin.yaml.j2", "DEVICE_PLUGIN_IMAGE"),
    DCGM_EXPORTER: ("dcgm-exporter.yaml.j2", "DCGM_EXPORTER_IMAGE"),
    GFD: ("gpu-feature-discovery.yaml.j2", "GFD_IMAGE"),
    MIG_MANAGER: ("mig-manager.yaml.j2", "MIG_MANAGER_IMAGE"),
}
IMAGE_ENV = {component: env for component, (_, env) in COMPONENTS.items()}

DAEMONSET_NAMES = {
    DEVICE_PLUGIN: "nvidia-device-plugin-daemonset",
    GFD: "gpu-feature-discovery",
    DCGM_EXPORTER: "nvidia-dcgm-exporter",
    MIG_MANAGER: "nvidia-mig-manager",
}

DEFAULT_TOLERATIONS: list[dict[str, Any]] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
DEFAULT_PRIORITY_CLASS = "system-node-critical"
PROTECTED_POD_LABELS = ("app", "app.kubernetes.io/part-of")
MIG_CONFIG_DIR = "/mig-parted-config"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gpu_operator", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Owner:
    """The ClusterPolicy every rendered object is owned by."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ClusterFacts:
    """What rendering needs besides the policy: the operand namespace, the owner, the operator's image env vars."""

    namespace: str
    owner: Owner | None = None
    image_env: Mapping[str, str] = field(default_factory=dict)


def image_path(spec: ComponentSpec, component: str, image_env: Mapping[str, str]) -> str:
    """NVIDIA's image resolution: `image` alone, or repository/image:version (@ for a digest), else the env var."""
    repository, image, version = spec.repository or "", spec.image or "", spec.version or ""
    env_name = IMAGE_ENV[component]
    if not repository and not version and image:
        return image
    if repository or image or version:
        if not (repository and image and version):
            raise RenderError(
                f"{component}: invalid image specification: repository, image and version must all be set "
                f"(got repository={repository!r}, image={image!r}, version={version!r}), or image alone"
            )
        separator = "@" if version.startswith("sha256:") else ":"
        return f"{repository}/{image}{separator}{version}"
    fallback = image_env.get(env_name, "")
    if fallback:
        return fallback
    raise RenderError(f"{component}: empty image path provided through both ClusterPolicy CR and ENV {env_name}")


def pull_policy(spec: ComponentSpec) -> str:
    return spec.image_pull_policy or "IfNotPresent"  # the CRD and the model allow only the three valid values


def _env_entry(var: EnvVar) -> dict[str, Any]:
    return {"name": var.name, "value": var.value or ""}


def merge_env(base: Iterable[Mapping[str, Any]], overrides: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Set-or-append: a name already present is replaced in place, a new one is appended."""
    out = [dict(e) for e in base]
    for entry in overrides:
        for i, existing in enumerate(out):
            if existing["name"] == entry["name"]:
                out[i] = dict(entry)
                break
        else:
            out.append(dict(entry))
    return out


def mig_strategy_env(strategy: str | None) -> list[dict[str, Any]]:
    """MIG_STRATEGY and NVIDIA_MIG_MONITOR_DEVICES as NVIDIA's operator sets them (gpu-operator-facts 4.6)."""
    if strategy is None:
        return [{"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"}]
    if strategy == "none":
        return [{"name": "MIG_STRATEGY", "value": "none"}]
    return [{"name": "MIG_STRATEGY", "value": strategy}, {"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"}]


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _user_env(spec: ComponentSpec) -> list[dict[str, Any]]:
    return [_env_entry(v) for v in spec.env or []]


def _mig_manager_env(spec: ClusterPolicySpec) -> list[dict[str, Any]]:
    mm = spec.mig_manager
    base = [
        _field_env("NODE_NAME", "spec.nodeName"),
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        {"name": "GPU_CLIENTS_FILE", "value": "/gpu-clients/clients.yaml"},
        _field_env("DEFAULT_GPU_CLIENTS_NAMESPACE", "metadata.namespace"),
    ]
    if mm.custom_config_name() is not None:
        base.append({"name": "CONFIG_FILE", "value": f"{MIG_CONFIG_DIR}/config.yaml"})
    else:
        base.append({"name": "DEFAULT_CONFIG_FILE", "value": f"{MIG_CONFIG_DIR}/config-default.yaml"})
    host_driver = "false" if spec.driver.is_enabled() else "true"
    base.append({"name": "WITH_SHUTDOWN_HOST_GPU_CLIENTS", "value": host_driver})
    return merge_env(base, _user_env(mm))


def _device_plugin_env(spec: ClusterPolicySpec) -> list[dict[str, Any]]:
    base = [
        {"name": "PASS_DEVICE_SPECS", "value": "true"},
        {"name": "FAIL_ON_INIT_ERROR", "value": "true"},
        {"name": "DEVICE_LIST_STRATEGY", "value": "envvar"},
        {"name": "DEVICE_ID_STRATEGY", "value": "uuid"},
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "all"},
        _field_env("NODE_NAME", "spec.nodeName"),
    ]
    # the strategy first, then the user's env: in the device plugin the user wins (as in NVIDIA's operator)
    return merge_env(merge_env(base, mig_strategy_env(spec.mig.strategy)), _user_env(spec.device_plugin))


def _gfd_env(spec: ClusterPolicySpec) -> list[dict[str, Any]]:
    base = [
        {"name": "GFD_SLEEP_INTERVAL", "value": "60s"},
        {"name": "GFD_FAIL_ON_INIT_ERROR", "value": "true"},
        _field_env("NODE_NAME", "spec.nodeName"),
    ]
    # the user's env first, then the strategy: in GFD the policy's strategy wins (as in NVIDIA's operator)
    return merge_env(merge_env(base, _user_env(spec.gfd)), mig_strategy_env(spec.mig.strategy))


def _dcgm_exporter_env(spec: ClusterPolicySpec) -> list[dict[str, Any]]:
    base = [
        {"name": "DCGM_EXPORTER_LISTEN", "value": ":9400"},
        {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
        {"name": "DCGM_EXPORTER_COLLECTORS", "value": "/etc/dcgm-exporter/dcp-metrics-included.csv"},
    ]
    return merge_env(base, _user_env(spec.dcgm_exporter))


@functools.cache
def default_mig_config() -> str:
    """`default-mig-parted-config`'s config.yaml: generated from the catalog, every model, with device filters."""
    from mig_manager.catalog import default_catalog
    from mig_manager.planner import device_types_of_models, generate_config
    from mig_manager.spec import dump_spec

    generated = generate_config(device_types_of_models(default_catalog().models), force_filters=True)
    return dump_spec(generated)


def _load_all(text: str, template: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc:
            raise RenderError(f"template {template} rendered something that is not a Kubernetes object: {doc!r}")
    return docs


def _template(name: str, **values: Any) -> list[dict[str, Any]]:
    return _load_all(_ENV.get_template(name).render(**values), name)


def _max_unavailable(value: str) -> int | str:
    return value if value.endswith("%") else int(value)


def _apply_daemonset_common(ds: dict[str, Any], spec: ClusterPolicySpec, component: ComponentSpec) -> None:
    """NVIDIA's common DaemonSet transforms: tolerations, priority, update strategy, labels, annotations, pull
    secrets, resources and the runtime class."""
    common = spec.daemonsets
    pod = ds["spec"]["template"]
    pod_spec = pod["spec"]
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in common.tolerations or []]
    pod_spec["tolerations"] = tolerations or copy.deepcopy(DEFAULT_TOLERATIONS)
    pod_spec["priorityClassName"] = common.priority_class_name or DEFAULT_PRIORITY_CLASS
    if common.update_strategy == "OnDelete":
        ds["spec"]["updateStrategy"] = {"type": "OnDelete"}
    else:
        strategy: dict[str, Any] = {"type": "RollingUpdate"}
        if common.rolling_update is not None and common.rolling_update.max_unavailable:
            strategy["rollingUpdate"] = {"maxUnavailable": _max_unavailable(common.rolling_update.max_unavailable)}
        ds["spec"]["updateStrategy"] = strategy
    if spec.operator.runtime_class:
        pod_spec["runtimeClassName"] = spec.operator.runtime_class
    secrets: list[str] = []
    for secret in component.image_pull_secrets or []:
        if secret and secret not in secrets:
            secrets.append(secret)
    if secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in secrets]
    if component.resources is not None:
        resources = {
            group: {name: str(quantity) for name, quantity in values.items()}
            for group, values in component.resources.model_dump(by_alias=True, exclude_none=True).items()
        }
        if resources:
            for container in pod_spec["containers"]:
                container["resources"] = copy.deepcopy(resources)
    labels = dict(common.labels or {})
    ds_labels = ds["metadata"].setdefault("labels", {})
    pod_labels = pod["metadata"].setdefault("labels", {})
    for key, value in labels.items():
        if key not in PROTECTED_POD_LABELS:
            ds_labels[key] = value
            pod_labels[key] = value
    if common.annotations:
        ds["metadata"].setdefault("annotations", {}).update(common.annotations)
        pod["metadata"].setdefault("annotations", {}).update(common.annotations)


def _finish(objects: list[dict[str, Any]], component: str, facts: ClusterFacts) -> list[dict[str, Any]]:
    for obj in objects:
        meta = obj["metadata"]
        labels = meta.setdefault("labels", {})
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        labels[COMPONENT_LABEL] = component
        if facts.owner is not None:
            meta["ownerReferences"] = [facts.owner.reference()]
    return objects


def _component(
    spec: ClusterPolicySpec, facts: ClusterFacts, component: str, comp: ComponentSpec, env: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    template, _ = COMPONENTS[component]
    values: dict[str, Any] = {
        "namespace": facts.namespace,
        "image": image_path(comp, component, facts.image_env),
        "pull_policy": pull_policy(comp),
        "args": list(comp.args or []),
        "env": env,
    }
    if component == MIG_MANAGER:
        mm = spec.mig_manager
        values.update(
            host_network=bool(mm.host_network),
            custom_config=mm.custom_config_name() is not None,
            mig_config_map=mm.config_map_name(),
            gpu_clients_config_map=mm.gpu_clients_config_map(),
        )
    objects = _template(template, **values)
    for obj in objects:
        if obj["kind"] == "DaemonSet":
            _apply_daemonset_common(obj, spec, comp)
    return _finish(objects, component, facts)


def enabled_components(spec: ClusterPolicySpec) -> list[str]:
    out = []
    if spec.device_plugin.is_enabled():
        out.append(DEVICE_PLUGIN)
    if spec.dcgm_exporter.is_enabled():
        out.append(DCGM_EXPORTER)
    if spec.gfd.is_enabled():
        out.append(GFD)
    if spec.mig_manager.is_enabled():
        out.append(MIG_MANAGER)
    return out


def render(spec: ClusterPolicySpec, facts: ClusterFacts) -> list[dict[str, Any]]:
    """Every object of every enabled component, in apply order (ServiceAccounts and RBAC, ConfigMaps, DaemonSets).

    Raises RenderError (naming the component) when an image cannot be resolved.
    """
    objects: list[dict[str, Any]] = []
    enabled = enabled_components(spec)
    if DEVICE_PLUGIN in enabled:
        objects += _component(spec, facts, DEVICE_PLUGIN, spec.device_plugin, _device_plugin_env(spec))
    if DCGM_EXPORTER in enabled:
        objects += _component(spec, facts, DCGM_EXPORTER, spec.dcgm_exporter, _dcgm_exporter_env(spec))
    if GFD in enabled:
        objects += _component(spec, facts, GFD, spec.gfd, _gfd_env(spec))
    if MIG_MANAGER in enabled:
        configmaps = _template(
            "mig-manager-configmaps.yaml.j2", namespace=facts.namespace, default_mig_config=default_mig_config()
        )
        objects += _finish(configmaps, MIG_MANAGER, facts)
        objects += _component(spec, facts, MIG_MANAGER, spec.mig_manager, _mig_manager_env(spec))
    return sorted(objects, key=_apply_rank)


_KIND_ORDER = (
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Service",
    "DaemonSet",
)


def _apply_rank(obj: Mapping[str, Any]) -> int:
    kind = obj["kind"]
    return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): identity of an object for apply and prune."""
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def content_hash(obj: Mapping[str, Any]) -> str:
    """A stable hash of an object's rendered content (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name}")
