"""Rendering: every policy field in scope, NVIDIA's env rules, and strict schema validation for Kubernetes 1.30-1.35."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from gpu_operator.errors import RenderError
from gpu_operator.policy import parse_spec
from gpu_operator.render import (
    ClusterFacts,
    Owner,
    content_hash,
    default_mig_config,
    find,
    image_path,
    merge_env,
    object_key,
    render,
)
from mig_manager.spec import load_spec

NS = "gpu-operator"
IMAGES = {
    "MIG_MANAGER_IMAGE": "registry.local/mig-manager:dev",
    "DEVICE_PLUGIN_IMAGE": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
    "GFD_IMAGE": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
    "DCGM_EXPORTER_IMAGE": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.2-4.8.1-distroless",
}
FACTS = ClusterFacts(NS, Owner("cluster-policy", "0b9d7a52-2f55-4b86-9d2e-0e6f2b1d2f61"), IMAGES)


def _render(spec: dict[str, Any], facts: ClusterFacts = FACTS) -> list[dict[str, Any]]:
    return render(parse_spec(spec), facts)


def _ds(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return dict(find(objects, "DaemonSet", name))


def _container(ds: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = ds["spec"]["template"]["spec"]["containers"][0]
    return result


def _env(ds: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(ds)["env"]}


def _volume(ds: dict[str, Any], name: str) -> dict[str, Any]:
    for volume in ds["spec"]["template"]["spec"]["volumes"]:
        if volume["name"] == name:
            return dict(volume)
    raise KeyError(name)


# Policies that between them set every field in scope; each is rendered and validated strictly.
POLICIES: dict[str, dict[str, Any]] = {
    "empty": {},
    "helm-defaults": {
        "mig": {"strategy": "single"},
        "daemonsets": {
            "labels": {"helm.sh/chart": "gpu-operator-v1", "app": "must-not-override"},
            "annotations": {"example.com/a": "b"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-node-critical",
            "updateStrategy": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "1"},
        },
        "migManager": {"config": {"default": "all-disabled"}, "gpuClientsConfig": {"name": ""}},
    },
    "mixed-custom": {
        "mig": {"strategy": "mixed"},
        "operator": {"runtimeClass": "nvidia"},
        "daemonsets": {
            "updateStrategy": "OnDelete",
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "tolerationSeconds": 30}],
        },
        "driver": {"enabled": False},
        "migManager": {
            "repository": "registry.local",
            "image": "mig-manager",
            "version": "sha256:" + "a" * 64,
            "imagePullPolicy": "Always",
            "imagePullSecrets": ["pull", "pull", "other"],
            "resources": {"limits": {"cpu": "500m", "memory": "350Mi"}, "requests": {"cpu": 1}},
            "args": ["--log-level=debug"],
            "env": [{"name": "WITH_REBOOT", "value": "true"}, {"name": "WITH_SHUTDOWN_HOST_GPU_CLIENTS", "value": "0"}],
            "config": {"name": "custom-mig-config", "default": ""},
            "gpuClientsConfig": {"name": "my-clients"},
            "hostNetwork": True,
        },
        "devicePlugin": {"env": [{"name": "MIG_STRATEGY", "value": "single"}], "args": ["--fail-on-init-error=false"]},
        "gfd": {"env": [{"name": "MIG_STRATEGY", "value": "single"}], "imagePullPolicy": "Never"},
        "dcgmExporter": {"image": "nvcr.io/nvidia/k8s/dcgm-exporter@sha256:" + "b" * 64, "env": [{"name": "X"}]},
    },
    "none-strategy": {"mig": {"strategy": "none"}, "daemonsets": {"rollingUpdate": {"maxUnavailable": "25%"}}},
    "only-mig-manager": {
        "devicePlugin": {"enabled": False},
        "gfd": {"enabled": False},
        "dcgmExporter": {"enabled": False},
    },
    "nothing": {
        "devicePlugin": {"enabled": False},
        "gfd": {"enabled": False},
        "dcgmExporter": {"enabled": False},
        "migManager": {"enabled": False},
    },
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_rendered_objects_are_valid_kubernetes(name: str, kube_validate: Callable[[dict[str, Any]], None]) -> None:
    objects = _render(POLICIES[name])
    keys = [object_key(o) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for obj in objects:
        kube_validate(obj)
        meta = obj["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "gpu-operator"
        assert meta["ownerReferences"][0]["kind"] == "ClusterPolicy"
        assert meta.get("namespace", NS) == NS


def test_components_follow_enabled() -> None:
    names = lambda spec: {o["metadata"]["name"] for o in _render(spec) if o["kind"] == "DaemonSet"}  # noqa: E731
    assert names({}) == {
        "nvidia-device-plugin-daemonset",
        "gpu-feature-discovery",
        "nvidia-dcgm-exporter",
        "nvidia-mig-manager",
    }
    assert names(POLICIES["only-mig-manager"]) == {"nvidia-mig-manager"}
    assert _render(POLICIES["nothing"]) == []
    no_mm = _render({"migManager": {"enabled": False}})
    assert not [o for o in no_mm if o["metadata"]["name"] in ("nvidia-mig-manager", "default-mig-parted-config")]


def test_apply_order_puts_daemonsets_last() -> None:
    kinds = [o["kind"] for o in _render({})]
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRoleBinding") < kinds.index("ConfigMap")
    assert kinds[-1] == "DaemonSet" and set(kinds[kinds.index("DaemonSet") :]) == {"DaemonSet"}


def test_mig_manager_default_config() -> None:
    ds = _ds(_render({}), "nvidia-mig-manager")
    env = _env(ds)
    assert env["DEFAULT_CONFIG_FILE"] == "/mig-parted-config/config-default.yaml"
    assert "CONFIG_FILE" not in env
    assert env["GPU_CLIENTS_FILE"] == "/gpu-clients/clients.yaml"
    assert env["WITH_SHUTDOWN_HOST_GPU_CLIENTS"] == "false"
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["DEFAULT_GPU_CLIENTS_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert _volume(ds, "mig-parted-config")["configMap"] == {
        "name": "default-mig-parted-config",
        "items": [{"key": "config.yaml", "path": "config-default.yaml"}],
    }
    assert _volume(ds, "gpu-clients")["configMap"] == {"name": "default-gpu-clients"}
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.deploy.mig-manager": "true"}
    assert pod["hostPID"] and pod["hostIPC"] and "hostNetwork" not in pod
    assert pod["serviceAccountName"] == "nvidia-mig-manager"
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "runtimeClassName" not in pod
    container = _container(ds)
    assert container["name"] == "nvidia-mig-manager"
    assert container["image"] == IMAGES["MIG_MANAGER_IMAGE"]
    assert container["command"] == ["mig-manager"] and "args" not in container
    assert container["securityContext"] == {"privileged": True}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {
        "run-nvidia-validations": "/run/nvidia/validations",
        "host-sys": "/sys",
        "host-root": "/host",
        "gpu-clients": "/gpu-clients",
        "mig-parted-config": "/mig-parted-config",
        "driver-install-dir": "/driver-root",
        "cdi-root": "/var/run/cdi",
    }


def test_mig_manager_custom_config_and_every_field() -> None:
    objects = _render(POLICIES["mixed-custom"])
    ds = _ds(objects, "nvidia-mig-manager")
    env = _env(ds)
    assert env["CONFIG_FILE"] == "/mig-parted-config/config.yaml"
    assert "DEFAULT_CONFIG_FILE" not in env
    # the user's env comes last and overrides in place
    names = [e["name"] for e in _container(ds)["env"]]
    assert names[-1] == "WITH_REBOOT" and env["WITH_REBOOT"] == "true"
    assert env["WITH_SHUTDOWN_HOST_GPU_CLIENTS"] == "0"
    assert _volume(ds, "mig-parted-config")["configMap"] == {"name": "custom-mig-config"}
    assert _volume(ds, "gpu-clients")["configMap"] == {"name": "my-clients"}
    container = _container(ds)
    assert container["image"] == "registry.local/mig-manager@sha256:" + "a" * 64
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == ["--log-level=debug"]
    assert container["resources"] == {"limits": {"cpu": "500m", "memory": "350Mi"}, "requests": {"cpu": "1"}}
    pod = ds["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "pull"}, {"name": "other"}]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "gpu", "tolerationSeconds": 30}]
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    # the operator's ConfigMaps are still rendered (the default config is the fallback others may name)
    assert find(objects, "ConfigMap", "default-mig-parted-config")


def test_host_driver_shuts_down_host_gpu_clients() -> None:
    env = _env(_ds(_render({"driver": {"enabled": False}}), "nvidia-mig-manager"))
    assert env["WITH_SHUTDOWN_HOST_GPU_CLIENTS"] == "true"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (None, {"NVIDIA_MIG_MONITOR_DEVICES": "all"}),
        ("none", {"MIG_STRATEGY": "none"}),
        ("single", {"MIG_STRATEGY": "single", "NVIDIA_MIG_MONITOR_DEVICES": "all"}),
        ("mixed", {"MIG_STRATEGY": "mixed", "NVIDIA_MIG_MONITOR_DEVICES": "all"}),
    ],
)
def test_strategy_env_of_device_plugin_and_gfd(strategy: str | None, expected: dict[str, str]) -> None:
    objects = _render({"mig": {"strategy": strategy}} if strategy else {})
    for name in ("nvidia-device-plugin-daemonset", "gpu-feature-discovery"):
        env = _env(_ds(objects, name))
        got = {k: env[k] for k in ("MIG_STRATEGY", "NVIDIA_MIG_MONITOR_DEVICES") if k in env}
        assert got == expected, name
    dcgm = _env(_ds(objects, "nvidia-dcgm-exporter"))
    assert "MIG_STRATEGY" not in dcgm and "NVIDIA_MIG_MONITOR_DEVICES" not in dcgm
    assert "MIG_STRATEGY" not in _env(_ds(objects, "nvidia-mig-manager"))


def test_strategy_precedence_differs_like_nvidia() -> None:
    objects = _render(POLICIES["mixed-custom"])
    assert _env(_ds(objects, "nvidia-device-plugin-daemonset"))["MIG_STRATEGY"] == "single"  # user env wins
    assert _env(_ds(objects, "gpu-feature-discovery"))["MIG_STRATEGY"] == "mixed"  # the policy wins


def test_strategy_change_changes_only_plugin_and_gfd() -> None:
    single = {object_key(o): content_hash(o) for o in _render({"mig": {"strategy": "single"}})}
    mixed = {object_key(o): content_hash(o) for o in _render({"mig": {"strategy": "mixed"}})}
    changed = sorted(k[3] for k in single if single[k] != mixed[k])
    assert changed == ["gpu-feature-discovery", "nvidia-device-plugin-daemonset"]


def test_gates_and_names_match_what_the_agent_waits_for() -> None:
    objects = _render({})
    gates = {
        "nvidia-device-plugin-daemonset": ("nvidia.com/gpu.deploy.device-plugin", "nvidia-device-plugin"),
        "gpu-feature-discovery": ("nvidia.com/gpu.deploy.gpu-feature-discovery", "gpu-feature-discovery"),
        "nvidia-dcgm-exporter": ("nvidia.com/gpu.deploy.dcgm-exporter", "nvidia-dcgm-exporter"),
    }
    for name, (gate, container) in gates.items():
        ds = _ds(objects, name)
        assert ds["spec"]["template"]["spec"]["nodeSelector"] == {gate: "true"}
        assert ds["spec"]["template"]["metadata"]["labels"]["app"] == name
        assert ds["spec"]["selector"]["matchLabels"] == {"app": name}
        assert _container(ds)["name"] == container


def test_daemonset_common_settings() -> None:
    objects = _render(POLICIES["helm-defaults"])
    for ds in (o for o in objects if o["kind"] == "DaemonSet"):
        pod_labels = ds["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["helm.sh/chart"] == "gpu-operator-v1"
        assert pod_labels["app"] == ds["metadata"]["name"]  # protected from daemonsets.labels
        assert ds["metadata"]["labels"]["helm.sh/chart"] == "gpu-operator-v1"
        assert ds["metadata"]["annotations"] == {"example.com/a": "b"}
        assert ds["spec"]["template"]["metadata"]["annotations"] == {"example.com/a": "b"}
        assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    ds = _ds(_render(POLICIES["none-strategy"]), "gpu-feature-discovery")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}
    assert _ds(_render({}), "gpu-feature-discovery")["spec"]["updateStrategy"] == {"type": "RollingUpdate"}


def test_pull_policy_is_passed_through_and_defaults_to_if_not_present() -> None:
    assert _container(_ds(_render(POLICIES["mixed-custom"]), "gpu-feature-discovery"))["imagePullPolicy"] == "Never"
    assert _container(_ds(_render({}), "gpu-feature-discovery"))["imagePullPolicy"] == "IfNotPresent"


def test_default_configmaps() -> None:
    objects = _render({})
    config = find(objects, "ConfigMap", "default-mig-parted-config")["data"]["config.yaml"]
    assert config == default_mig_config()
    spec = load_spec(config).spec
    assert {"all-disabled", "all-enabled", "all-balanced", "all-1g.10gb"} <= set(spec.mig_configs)
    assert all(e.device_filter for entries in spec.mig_configs.values() for e in entries)
    clients = yaml.safe_load(find(objects, "ConfigMap", "default-gpu-clients")["data"]["clients.yaml"])
    assert clients == {
        "version": "v1",
        "systemd-services": [
            "nvsm.service",
            "nvsm-mqtt.service",
            "nvsm-core.service",
            "nvsm-api-gateway.service",
            "nvsm-notifier.service",
            "nv_peer_mem.service",
            "nvidia-dcgm.service",
            "dcgm.service",
            "dcgm-exporter.service",
        ],
    }


def test_mig_manager_rbac_is_least_privilege() -> None:
    objects = _render({})
    cluster_rules = find(objects, "ClusterRole", "nvidia-mig-manager")["rules"]
    assert {r["resources"][0]: tuple(r["verbs"]) for r in cluster_rules if r["apiGroups"] == [""]} == {
        "nodes": ("get", "list", "watch", "update", "patch"),
        "pods": ("list", "watch"),
        "events": ("create", "patch"),
    }
    role_rules = find(objects, "Role", "nvidia-mig-manager")["rules"]
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in role_rules + cluster_rules)
    binding = find(objects, "ClusterRoleBinding", "nvidia-mig-manager")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nvidia-mig-manager", "namespace": NS}]


def test_no_owner_when_unknown() -> None:
    objects = render(parse_spec({}), ClusterFacts(NS, None, IMAGES))
    assert all("ownerReferences" not in o["metadata"] for o in objects)


def test_rendering_is_deterministic() -> None:
    assert _render(POLICIES["mixed-custom"]) == _render(POLICIES["mixed-custom"])


@pytest.mark.parametrize(
    ("fields", "env", "expected"),
    [
        ({"image": "quay.io/x/y@sha256:abc"}, {}, "quay.io/x/y@sha256:abc"),
        ({"repository": "r", "image": "i", "version": "v1"}, {}, "r/i:v1"),
        ({"repository": "r", "image": "i", "version": "sha256:abc"}, {}, "r/i@sha256:abc"),
        ({}, {"MIG_MANAGER_IMAGE": "from/env:1"}, "from/env:1"),
    ],
)
def test_image_path(fields: dict[str, str], env: dict[str, str], expected: str) -> None:
    assert image_path(parse_spec({"migManager": fields}).mig_manager, "mig-manager", env) == expected


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"repository": "r", "image": "i"}, "repository, image and version must all be set"),
        ({"version": "v1"}, "repository, image and version must all be set"),
        ({}, "ENV MIG_MANAGER_IMAGE"),
    ],
)
def test_bad_image_specification(fields: dict[str, str], match: str) -> None:
    with pytest.raises(RenderError, match=match):
        render(parse_spec({"migManager": fields}), ClusterFacts(NS, None, {**IMAGES, "MIG_MANAGER_IMAGE": ""}))


def test_merge_env_sets_or_appends() -> None:
    base = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert merge_env(base, [{"name": "B", "value": "x"}, {"name": "C", "value": "3"}]) == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "x"},
        {"name": "C", "value": "3"},
    ]
