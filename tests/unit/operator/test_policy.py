"""ClusterPolicy models and the generated CRD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gpu_operator import crd
from gpu_operator.errors import PolicyError
from gpu_operator.policy import (
    DEFAULT_GPU_CLIENTS_CONFIG_MAP,
    DEFAULT_MIG_CONFIG_MAP,
    ClusterPolicySpec,
    parse_spec,
    unsupported_fields,
)

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "crds" / "nvidia.com_clusterpolicies.yaml"

# What NVIDIA's Helm chart renders for its default values (trimmed to keep it readable; every section is there).
NVIDIA_HELM_POLICY: dict[str, Any] = {
    "apiVersion": "nvidia.com/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "cluster-policy"},
    "spec": {
        "hostPaths": {"rootFS": "/", "driverInstallDir": "/run/nvidia/driver"},
        "operator": {"defaultRuntime": "docker", "runtimeClass": "nvidia", "initContainer": {}},
        "daemonsets": {
            "labels": {"helm.sh/chart": "gpu-operator-v1.0.0", "app.kubernetes.io/managed-by": "gpu-operator"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-node-critical",
            "updateStrategy": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "1"},
        },
        "validator": {"repository": "nvcr.io/nvidia", "image": "gpu-operator", "version": "v26.7.0"},
        "mig": {"strategy": "single"},
        "psa": {"enabled": False},
        "cdi": {"enabled": True, "nriPluginEnabled": False},
        "driver": {
            "enabled": True,
            "useNvidiaDriverCRD": False,
            "kernelModuleType": "auto",
            "repository": "nvcr.io/nvidia",
            "image": "driver",
            "version": "595.91.07",
        },
        "toolkit": {"enabled": True, "repository": "nvcr.io/nvidia/k8s", "image": "container-toolkit"},
        "devicePlugin": {
            "enabled": True,
            "repository": "nvcr.io/nvidia",
            "image": "k8s-device-plugin",
            "version": "v0.20.0",
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "PASS_DEVICE_SPECS", "value": "true"}],
        },
        "dcgm": {"enabled": False},
        "dcgmExporter": {
            "enabled": True,
            "repository": "nvcr.io/nvidia/k8s",
            "image": "dcgm-exporter",
            "version": "4.5.2-4.8.1-distroless",
            "serviceMonitor": {"enabled": False},
        },
        "gfd": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "k8s-device-plugin", "version": "v0.20.0"},
        "migManager": {
            "enabled": True,
            "repository": "nvcr.io/nvidia/cloud-native",
            "image": "k8s-mig-manager",
            "version": "v0.15.0",
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "WITH_REBOOT", "value": "false"}],
            "resources": {"limits": {"cpu": "500m", "memory": "350Mi"}, "requests": {"cpu": 1}},
            "config": {"default": "all-disabled"},
            "gpuClientsConfig": {"name": ""},
        },
        "nodeStatusExporter": {"enabled": False},
        "sandboxWorkloads": {"enabled": False, "defaultWorkload": "container"},
    },
}


def test_committed_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text(encoding="utf-8") == crd.crd_yaml(), "run `make crds` and commit the result"


def test_crd_identity_and_subresources() -> None:
    manifest = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    assert manifest["metadata"]["name"] == "clusterpolicies.nvidia.com"
    spec = manifest["spec"]
    assert spec["scope"] == "Cluster"
    assert spec["names"] == {
        "kind": "ClusterPolicy",
        "listKind": "ClusterPolicyList",
        "plural": "clusterpolicies",
        "singular": "clusterpolicy",
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Status": ".status.state",
        "Strategy": ".spec.mig.strategy",
        "Age": ".metadata.creationTimestamp",
    }


def _schema_at(path: str) -> dict[str, Any]:
    node = crd.crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in path.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize(
    ("path", "enum", "default"),
    [
        ("spec.mig.strategy", ["none", "single", "mixed"], None),
        ("spec.migManager.config.default", ["all-disabled", ""], "all-disabled"),
        ("spec.daemonsets.updateStrategy", ["RollingUpdate", "OnDelete"], "RollingUpdate"),
        ("status.state", ["ignored", "ready", "notReady"], None),
    ],
)
def test_crd_enums_and_defaults(path: str, enum: list[str], default: str | None) -> None:
    node = _schema_at(path)
    assert node["enum"] == enum
    assert node.get("default") == default


@pytest.mark.parametrize("path", ["spec.migManager.enabled", "spec.devicePlugin.enabled", "spec.mig.strategy"])
def test_no_crd_default_where_nvidia_has_none(path: str) -> None:
    assert "default" not in _schema_at(path)


@pytest.mark.parametrize(
    "path", ["spec", "spec.migManager", "spec.driver", "spec.daemonsets", "spec.migManager.config"]
)
def test_open_sections_keep_unknown_fields(path: str) -> None:
    assert _schema_at(path)["x-kubernetes-preserve-unknown-fields"] is True


def test_resources_are_int_or_string() -> None:
    limits = _schema_at("spec.migManager.resources.limits")["additionalProperties"]
    assert limits["x-kubernetes-int-or-string"] is True


def test_nvidia_helm_policy_is_accepted(check_policy: Callable[[dict[str, Any]], None]) -> None:
    check_policy(NVIDIA_HELM_POLICY)
    spec = parse_spec(NVIDIA_HELM_POLICY["spec"])
    assert spec.mig.strategy == "single"
    assert spec.mig_manager.is_enabled()
    assert spec.mig_manager.env is not None and spec.mig_manager.env[0].name == "WITH_REBOOT"
    assert spec.daemonsets.rolling_update is not None and spec.daemonsets.rolling_update.max_unavailable == "1"
    assert spec.mig_manager.gpu_clients_config_map() == DEFAULT_GPU_CLIENTS_CONFIG_MAP


def test_unsupported_fields_are_kept_and_listed() -> None:
    spec = parse_spec(NVIDIA_HELM_POLICY["spec"])
    assert sorted(unsupported_fields(spec)) == [
        "spec.cdi",
        "spec.dcgm",
        "spec.dcgmExporter.serviceMonitor",
        "spec.driver.image",
        "spec.driver.kernelModuleType",
        "spec.driver.repository",
        "spec.driver.useNvidiaDriverCRD",
        "spec.driver.version",
        "spec.hostPaths",
        "spec.nodeStatusExporter",
        "spec.operator.defaultRuntime",
        "spec.operator.initContainer",
        "spec.psa",
        "spec.sandboxWorkloads",
        "spec.toolkit",
        "spec.validator",
    ]
    # kept: dumping by alias returns them
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["toolkit"]["image"] == "container-toolkit"


def test_empty_spec_is_all_defaults() -> None:
    spec = parse_spec(None)
    assert spec.mig.strategy is None
    assert spec.mig_manager.is_enabled() and spec.device_plugin.is_enabled() and spec.gfd.is_enabled()
    assert spec.driver.is_enabled()
    assert spec.mig_manager.custom_config_name() is None
    assert spec.mig_manager.config_map_name() == DEFAULT_MIG_CONFIG_MAP
    assert spec.mig_manager.default_config_label() == ""
    assert unsupported_fields(spec) == []


@pytest.mark.parametrize(
    ("config", "custom", "label"),
    [
        ({}, None, "all-disabled"),
        ({"name": ""}, None, "all-disabled"),
        ({"name": "default-mig-parted-config"}, None, "all-disabled"),
        ({"name": "custom-mig", "default": ""}, "custom-mig", ""),
    ],
)
def test_mig_config_selection(config: dict[str, str], custom: str | None, label: str) -> None:
    spec = ClusterPolicySpec.model_validate({"migManager": {"config": config}})
    assert spec.mig_manager.custom_config_name() == custom
    assert spec.mig_manager.default_config_label() == label


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"mig": {"strategy": "dual"}}, "spec.mig.strategy"),
        ({"migManager": {"enabled": "maybe"}}, "spec.migManager.enabled"),
        ({"migManager": {"config": {"default": "all-1g.10gb"}}}, "spec.migManager.config.default"),
        ({"migManager": {"env": [{"value": "x"}]}}, "spec.migManager.env.0.name"),
        ({"daemonsets": {"updateStrategy": "Recreate"}}, "spec.daemonsets.updateStrategy"),
        ({"daemonsets": {"rollingUpdate": {"maxUnavailable": "one"}}}, "spec.daemonsets.rollingUpdate.maxUnavailable"),
        ({"daemonsets": {"tolerations": "all"}}, "spec.daemonsets.tolerations"),
        ({"devicePlugin": []}, "spec.devicePlugin"),
    ],
)
def test_bad_specs_name_the_field(
    spec: dict[str, Any], where: str, check_policy: Callable[[dict[str, Any]], None]
) -> None:
    with pytest.raises(PolicyError, match=where.replace(".", r"\.")):
        parse_spec(spec)
    with pytest.raises(jsonschema.ValidationError):
        check_policy({"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {}, "spec": spec})


def test_status_schema_requires_state(check_policy: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_policy({"spec": {}, "status": {"namespace": "gpu-operator"}})
    check_policy({"spec": {}, "status": {"state": "ignored"}})


def test_crd_main_writes_file(tmp_path: Path) -> None:
    target = tmp_path / "crd.yaml"
    assert crd.main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == crd.crd_yaml()


def test_crd_is_a_valid_kubernetes_object(kube_validate: Callable[[dict[str, Any]], None]) -> None:
    kube_validate(crd.crd_manifest())
