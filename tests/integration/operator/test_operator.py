"""The operator running against kubesim: acceptance items 2 and 3 of issue 7."""

from __future__ import annotations

import json

from operator_harness import HELM_SPEC, NS, PCI, TIMEOUT, Cluster, OperatorProcess, policy_doc

from kubesim.testing import wait_for

GPU_LABELS = {**PCI, "nvidia.com/mig.capable": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def _ready(cluster: Cluster, name: str = "cluster-policy") -> None:
    wait_for(lambda: cluster.state(name) == "ready", TIMEOUT, 0.1, f"ClusterPolicy {name} ready")


def test_strategy_patch_changes_plugin_and_gfd_env(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.add_node("gpu-1", GPU_LABELS)
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    _ready(cluster)
    assert cluster.env("nvidia-device-plugin-daemonset")["MIG_STRATEGY"] == "single"
    assert cluster.condition("Ready")["reason"] == "Reconciled"
    patch = [{"op": "replace", "path": "/spec/mig/strategy", "value": "mixed"}]
    cluster.kubectl("patch", "clusterpolicies/cluster-policy", "--type=json", "-p", json.dumps(patch))
    for name in ("nvidia-device-plugin-daemonset", "gpu-feature-discovery"):
        wait_for(lambda n=name: cluster.env(n).get("MIG_STRATEGY") == "mixed", TIMEOUT, 0.1, f"{name} mixed")
        assert cluster.env(name)["NVIDIA_MIG_MONITOR_DEVICES"] == "all"
    _ready(cluster)


def test_custom_config_name_changes_mig_manager_env_and_volume(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.add_node("gpu-1", GPU_LABELS)
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    wait_for(lambda: cluster.daemonset("nvidia-mig-manager") is not None, TIMEOUT, 0.1, "mig manager")
    assert "DEFAULT_CONFIG_FILE" in cluster.env("nvidia-mig-manager")
    config = "version: v1\nmig-configs:\n  all-disabled:\n    - devices: all\n      mig-enabled: false\n"
    cluster.kubectl("create", "configmap", "custom-mig-config", "-n", NS, f"--from-literal=config.yaml={config}")
    patch = [{"op": "add", "path": "/spec/migManager/config/name", "value": "custom-mig-config"}]
    cluster.kubectl("patch", "clusterpolicies/cluster-policy", "--type=json", "-p", json.dumps(patch))

    def switched() -> bool:
        env = cluster.env("nvidia-mig-manager")
        return env.get("CONFIG_FILE") == "/mig-parted-config/config.yaml" and "DEFAULT_CONFIG_FILE" not in env

    wait_for(switched, TIMEOUT, 0.1, "CONFIG_FILE")
    ds = cluster.daemonset("nvidia-mig-manager")
    assert ds is not None
    volume = next(v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == "mig-parted-config")
    assert volume["configMap"]["name"] == "custom-mig-config"
    assert "items" not in volume["configMap"]  # the default config's item remap is gone (server-side apply)
    _ready(cluster)


def test_disabling_the_mig_manager_prunes_it(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.add_node("gpu-1", GPU_LABELS)
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    wait_for(lambda: cluster.daemonset("nvidia-mig-manager") is not None, TIMEOUT, 0.1, "mig manager")
    patch = [{"op": "replace", "path": "/spec/migManager/enabled", "value": False}]
    cluster.kubectl("patch", "clusterpolicies/cluster-policy", "--type=json", "-p", json.dumps(patch))
    wait_for(lambda: cluster.daemonset("nvidia-mig-manager") is None, TIMEOUT, 0.1, "mig manager gone")

    def configmaps() -> set[str]:
        return {cm.metadata.name for cm in cluster.core.list_namespaced_config_map(NS).items}

    def accounts() -> set[str]:
        return {sa.metadata.name for sa in cluster.core.list_namespaced_service_account(NS).items}

    wait_for(lambda: not {"default-mig-parted-config", "default-gpu-clients"} & configmaps(), TIMEOUT, 0.1, "pruned")
    wait_for(lambda: "nvidia-mig-manager" not in accounts(), TIMEOUT, 0.1, "ServiceAccount pruned (the last kind)")
    assert cluster.daemonset("nvidia-device-plugin-daemonset") is not None
    _ready(cluster)


def test_second_clusterpolicy_is_ignored(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    wait_for(lambda: cluster.state() is not None, TIMEOUT, 0.1, "first policy has a state")
    cluster.apply(policy_doc("second", mig={"strategy": "mixed"}))
    wait_for(lambda: cluster.state("second") == "ignored", TIMEOUT, 0.1, "second ignored")
    assert cluster.env("nvidia-device-plugin-daemonset")["MIG_STRATEGY"] == "single"
    # no GPU node yet: ready, with the reason saying so
    _ready(cluster)
    assert cluster.condition("Ready")["reason"] == "NoGPUNodes"


def test_new_gpu_node_is_labelled_and_paused_node_left_alone(cluster: Cluster, operator: OperatorProcess) -> None:
    paused = {
        **GPU_LABELS,
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.deploy.device-plugin": "paused-for-mig-change",
        "nvidia.com/gpu.deploy.gpu-feature-discovery": "paused-for-mig-change",
        "nvidia.com/gpu.deploy.dcgm-exporter": "paused-for-mig-change",
        "nvidia.com/gpu.deploy.mig-manager": "true",
        "nvidia.com/mig.config": "all-1g.10gb",
        "nvidia.com/mig.config.state": "pending",
    }
    cluster.add_node("paused", paused)
    cluster.add_node("cpu-1", {"kubernetes.io/hostname": "cpu-1"})
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    _ready(cluster)
    cluster.add_node("gpu-new", GPU_LABELS)

    def labelled() -> bool:
        labels = cluster.node_labels("gpu-new")
        return (
            labels.get("nvidia.com/gpu.present") == "true"
            and labels.get("nvidia.com/gpu.deploy.mig-manager") == "true"
            and labels.get("nvidia.com/gpu.deploy.device-plugin") == "true"
            and labels.get("nvidia.com/mig.config") == "all-disabled"
        )

    wait_for(labelled, TIMEOUT, 0.1, "new node labelled")
    labels = cluster.node_labels("paused")
    for key, value in paused.items():
        assert labels[key] == value, key
    assert not any(k.startswith("nvidia.com/") for k in cluster.node_labels("cpu-1"))
    # a node that leaves and rejoins is labelled again
    cluster.core.delete_node("gpu-new")
    cluster.add_node("gpu-new", GPU_LABELS)
    wait_for(labelled, TIMEOUT, 0.1, "rejoined node labelled")


def test_invalid_custom_config_sets_mig_config_invalid(cluster: Cluster, operator: OperatorProcess) -> None:
    inventory = {"version": "v1", "gpus": [{"index": 0, "pciId": "0x233010DE", "migCapable": True}]}
    cluster.add_node(
        "gpu-1",
        {**GPU_LABELS, "nvidia.com/mig.config": "too-many"},
        {"nvidia.com/mig.inventory": json.dumps(inventory)},
    )
    spec = json.loads(json.dumps(HELM_SPEC))
    spec["migManager"]["config"]["name"] = "custom-mig-config"
    cluster.apply(policy_doc(**spec))
    operator.start()

    def error() -> str:
        c = cluster.condition("Error")
        return c.get("message", "") if c.get("reason") == "MigConfigInvalid" and c.get("status") == "True" else ""

    assert "does not exist" in wait_for(error, TIMEOUT, 0.1, "missing ConfigMap reported")
    config = (
        "version: v1\nmig-configs:\n  too-many:\n"
        "    - devices: all\n      mig-enabled: true\n      mig-devices:\n        1g.10gb: 8\n"
    )
    cluster.kubectl("create", "configmap", "custom-mig-config", "-n", NS, f"--from-literal=config.yaml={config}")
    wait_for(lambda: "node gpu-1, config too-many" in error(), TIMEOUT, 0.1, "geometry reported")
    wait_for(lambda: cluster.warnings().count("MigConfigInvalid") == 2, TIMEOUT, 0.1, "a Warning per problem")
    fixed = config.replace("8", "7")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "custom-mig-config", "namespace": NS},
            "data": {"config.yaml": fixed},
        }
    )
    wait_for(lambda: cluster.condition("Error").get("status") == "False", TIMEOUT, 0.1, "config fixed")


def test_resync_and_restart_make_no_writes(cluster: Cluster, operator: OperatorProcess) -> None:
    for i in range(3):
        cluster.add_node(f"gpu-{i}", GPU_LABELS)
    cluster.add_node("cpu-1", {})
    cluster.apply(policy_doc(**{**HELM_SPEC, "toolkit": {"enabled": True}}))
    operator.start()
    _ready(cluster)
    assert cluster.condition("Ready")["reason"] == "UnsupportedField"
    assert "spec.toolkit" in cluster.condition("Ready")["message"]
    cluster.wait_warnings(["UnsupportedField"])
    operator.wait_reconciles(2)  # settle
    before = cluster.writes()
    operator.wait_reconciles(4)
    assert cluster.writes() == before, "a resync of an unchanged cluster wrote"
    assert operator.health("/healthz") == 200 and operator.health("/readyz") == 200
    operator.stop()
    operator.start()
    wait_for(lambda: operator.reconciles() >= 3, TIMEOUT, 0.1, "restarted operator reconciled")
    assert cluster.writes() == before, "a restarted operator wrote"


def test_missing_gpu_clients_config_is_reported(cluster: Cluster, operator: OperatorProcess) -> None:
    spec = json.loads(json.dumps(HELM_SPEC))
    spec["migManager"]["gpuClientsConfig"] = {"name": "my-clients"}
    cluster.apply(policy_doc(**spec))
    operator.start()
    wait_for(
        lambda: (
            "my-clients (migManager.gpuClientsConfig.name) does not exist"
            in cluster.condition("Error").get("message", "")
        ),
        TIMEOUT,
        0.1,
        "missing GPU clients ConfigMap reported",
    )
    clients = "version: v1\nsystemd-services:\n  - nvsm.service\n"
    cluster.kubectl("create", "configmap", "my-clients", "-n", NS, f"--from-literal=clients.yaml={clients}")
    wait_for(lambda: cluster.condition("Error").get("status") == "False", TIMEOUT, 0.1, "clients config found")
    ds = cluster.daemonset("nvidia-mig-manager")
    assert ds is not None
    volume = next(v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == "gpu-clients")
    assert volume["configMap"]["name"] == "my-clients"


def test_edits_to_the_default_config_are_reverted(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()

    def default_config() -> str:
        items = cluster.core.list_namespaced_config_map(NS, field_selector="metadata.name=default-mig-parted-config")
        return str((items.items[0].data or {}).get("config.yaml", "")) if items.items else ""

    original = wait_for(default_config, TIMEOUT, 0.1, "default config rendered")
    patch = {"data": {"config.yaml": "version: v1\nmig-configs: {}\n"}}
    cluster.kubectl(
        "patch", "configmap", "default-mig-parted-config", "-n", NS, "--type=merge", "-p", json.dumps(patch)
    )
    wait_for(lambda: default_config() == original, TIMEOUT, 0.1, "default config restored")
