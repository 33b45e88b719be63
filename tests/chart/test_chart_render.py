"""The template matrix: every case renders with the real helm, every built-in object passes kubernetes-validate
--strict for Kubernetes 1.30 to 1.35, the ClusterPolicy passes the CRD's schema and parses as the operator's policy
with no unsupported field, and each case's values land where they should."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    KUBE_VERSIONS,
    NAMESPACE,
    ROOT,
    by_kind,
    clusterpolicy_errors,
    one,
    render,
    template,
)

from gpu_operator.policy import parse_spec, unsupported_fields
from gpu_operator.render import ClusterFacts, Owner
from gpu_operator.render import render as operator_render

CUSTOM = (ROOT / "examples" / "custom-mig-config.yaml").read_text()
CLIENTS = "version: v1\nsystemd-services:\n  - nvsm.service\n  - dcgm.service\n"
CLIENTS_DATA = {"clients.yaml": CLIENTS}

Docs = list[dict[str, Any]]


def spec_of(docs: Docs) -> dict[str, Any]:
    return dict(one(docs, "ClusterPolicy", "cluster-policy")["spec"])


def agent_env(docs: Docs) -> dict[str, str]:
    """The MIG manager's env as the operator renders it from the chart's ClusterPolicy."""
    objects = operator_render(parse_spec(spec_of(docs)), ClusterFacts(NAMESPACE, Owner("cluster-policy", "u")))
    ds = one(objects, "DaemonSet", "nvidia-mig-manager")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def check_defaults(docs: Docs) -> None:
    spec = spec_of(docs)
    assert spec["mig"] == {"strategy": "single"}
    mm = spec["migManager"]
    assert mm["enabled"] is True
    assert (mm["repository"], mm["image"], mm["version"]) == ("ghcr.io/gpu-operator-mig", "mig-manager", "0.1.0")
    assert mm["config"] == {"default": "all-disabled"}
    assert "gpuClientsConfig" not in mm
    assert spec["driver"] == {"enabled": True}
    for key in ("devicePlugin", "gfd"):
        assert (spec[key]["repository"], spec[key]["image"]) == ("nvcr.io/nvidia", "k8s-device-plugin")
    assert spec["daemonsets"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert by_kind(docs, "ConfigMap") == []
    assert by_kind(docs, "ValidatingAdmissionPolicy") == []
    deploy = one(docs, "Deployment", "gpu-operator")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/gpu-operator-mig/gpu-operator:0.1.0"
    assert container["command"] == ["gpu-operator"]
    assert "run" in container["args"] and "--leader-elect" in container["args"]
    env = agent_env(docs)
    assert env["DEFAULT_CONFIG_FILE"] == "/mig-parted-config/config-default.yaml"
    assert "CONFIG_FILE" not in env


def strategy_is(value: str | None) -> Callable[[Docs], None]:
    def check(docs: Docs) -> None:
        assert spec_of(docs)["mig"] == ({"strategy": value} if value else {})

    return check


def check_custom_config(docs: Docs) -> None:
    cm = one(docs, "ConfigMap", "custom-mig-config")
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["data"] == {"config.yaml": CUSTOM}
    assert spec_of(docs)["migManager"]["config"] == {"name": "custom-mig-config", "default": "all-disabled"}
    assert "create" not in yaml.safe_dump(spec_of(docs)["migManager"])
    assert agent_env(docs)["CONFIG_FILE"] == "/mig-parted-config/config.yaml"


def check_create_without_data(docs: Docs) -> None:
    assert by_kind(docs, "ConfigMap") == []  # as NVIDIA: nothing to create
    assert spec_of(docs)["migManager"]["config"]["name"] == "custom-mig-config"


def check_host_driver(docs: Docs) -> None:
    assert spec_of(docs)["driver"] == {"enabled": False}
    assert agent_env(docs)["WITH_SHUTDOWN_HOST_GPU_CLIENTS"] == "true"


def check_with_reboot(docs: Docs) -> None:
    assert spec_of(docs)["migManager"]["env"] == [{"name": "WITH_REBOOT", "value": "true"}]
    assert agent_env(docs)["WITH_REBOOT"] == "true"


def check_gpu_clients(docs: Docs) -> None:
    assert spec_of(docs)["migManager"]["gpuClientsConfig"] == {"name": "host-gpu-clients"}
    assert by_kind(docs, "ConfigMap") == []


def check_gpu_clients_created(docs: Docs) -> None:
    cm = one(docs, "ConfigMap", "host-gpu-clients")
    assert cm["data"] == {"clients.yaml": CLIENTS}
    assert spec_of(docs)["migManager"]["gpuClientsConfig"] == {"name": "host-gpu-clients"}


def check_admission(docs: Docs) -> None:
    policy = one(docs, "ValidatingAdmissionPolicy")
    binding = one(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    (condition,) = policy["spec"]["matchConditions"]
    assert f"system:serviceaccount:{NAMESPACE}:nvidia-mig-manager" in condition["expression"]


def check_everything(docs: Docs) -> None:
    spec = spec_of(docs)
    assert spec["operator"] == {"runtimeClass": "nvidia"}
    assert spec["daemonsets"]["labels"]["team"] == "gpu"
    assert spec["daemonsets"]["updateStrategy"] == "OnDelete"
    assert spec["daemonsets"]["rollingUpdate"] == {"maxUnavailable": "25%"}
    assert spec["dcgmExporter"]["enabled"] is False
    assert spec["migManager"]["resources"] == {"limits": {"memory": "256Mi"}}
    assert spec["migManager"]["imagePullSecrets"] == ["regcred"]
    assert spec["migManager"]["hostNetwork"] is True
    assert spec["migManager"]["config"]["default"] == ""
    assert spec["devicePlugin"] == {
        "enabled": True,
        "image": "registry.example.com/plugin@sha256:abc",
        "imagePullPolicy": "IfNotPresent",
    }
    deploy = one(docs, "Deployment", "gpu-operator")
    assert deploy["spec"]["replicas"] == 2
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"  # standbys answer 500 on /readyz
    assert {"name": "LOG_FORMAT", "value": "json"} in container["env"]


CASES: dict[str, tuple[list[str], dict[str, Any] | None, Callable[[Docs], None]]] = {
    "defaults": ([], None, check_defaults),
    "strategy-none": (["mig.strategy=none"], None, strategy_is("none")),
    "strategy-single": (["mig.strategy=single"], None, strategy_is("single")),
    "strategy-mixed": (["mig.strategy=mixed"], None, strategy_is("mixed")),
    "strategy-unset": (["mig.strategy="], None, strategy_is(None)),
    "custom-config": (
        [],
        {"migManager": {"config": {"create": True, "name": "custom-mig-config", "data": {"config.yaml": CUSTOM}}}},
        check_custom_config,
    ),
    "create-without-data": (
        ["migManager.config.create=true", "migManager.config.name=custom-mig-config"],
        None,
        check_create_without_data,
    ),
    "host-driver": (["driver.enabled=false"], None, check_host_driver),
    "with-reboot": (["migManager.env[0].name=WITH_REBOOT", "migManager.env[0].value=true"], None, check_with_reboot),
    "gpu-clients-config": (["migManager.gpuClientsConfig.name=host-gpu-clients"], None, check_gpu_clients),
    "gpu-clients-created": (
        [],
        {
            "migManager": {
                "gpuClientsConfig": {"create": True, "name": "host-gpu-clients", "data": {"clients.yaml": CLIENTS}}
            }
        },
        check_gpu_clients_created,
    ),
    "admission-policy": (["admissionPolicy.enabled=true"], None, check_admission),
    "everything": (
        [
            "operator.runtimeClass=nvidia",
            "operator.replicas=2",
            "operator.env[0].name=LOG_FORMAT",
            "operator.env[0].value=json",
            "daemonsets.labels.team=gpu",
            "daemonsets.updateStrategy=OnDelete",
            "daemonsets.rollingUpdate.maxUnavailable=25%",
            "dcgmExporter.enabled=false",
            "migManager.resources.limits.memory=256Mi",
            "migManager.imagePullSecrets[0]=regcred",
            "migManager.hostNetwork=true",
            "migManager.config.default=",
            "devicePlugin.repository=",
            "devicePlugin.version=",
            "devicePlugin.image=registry.example.com/plugin@sha256:abc",
            "admissionPolicy.enabled=true",
        ],
        None,
        check_everything,
    ),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Docs]:
    tmp = tmp_path_factory.mktemp("values")
    return {name: render(*sets, values=values, tmp=tmp) for name, (sets, values, _) in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_case_renders_what_its_values_say(rendered: dict[str, Docs], case: str) -> None:
    CASES[case][2](rendered[case])


@pytest.mark.parametrize("case", list(CASES))
def test_builtin_objects_pass_kubernetes_validate_strict(rendered: dict[str, Docs], case: str) -> None:
    docs = [d for d in rendered[case] if d["kind"] != "ClusterPolicy"]
    assert {"Deployment", "ServiceAccount", "ClusterRole", "Role", "Lease"} <= {d["kind"] for d in docs}
    for version in KUBE_VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{case}: {doc['kind']} {doc['metadata']['name']} is invalid for Kubernetes {version}: {exc}"
                )


@pytest.mark.parametrize("case", list(CASES))
def test_clusterpolicy_passes_the_crd_schema_and_the_operator(rendered: dict[str, Docs], case: str) -> None:
    policy = one(rendered[case], "ClusterPolicy", "cluster-policy")
    assert clusterpolicy_errors(policy) == []
    spec = parse_spec(policy["spec"])
    assert unsupported_fields(spec) == []
    # the operator renders its operands from it without error (images complete, config names valid)
    assert operator_render(spec, ClusterFacts(NAMESPACE, Owner("cluster-policy", "u")))


def test_the_schema_checker_catches_what_the_api_server_would_reject() -> None:
    base = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"}, "spec": {}}
    assert clusterpolicy_errors(base) == []
    bad_strategy = {**base, "spec": {"mig": {"strategy": "triple"}}}
    assert any(e.startswith("spec.mig.strategy:") for e in clusterpolicy_errors(bad_strategy))
    bad_env = {**base, "spec": {"migManager": {"env": [{"name": "X", "valueFrom": {}}]}}}
    assert any("valueFrom" in e for e in clusterpolicy_errors(bad_env))
    bad_type = {**base, "spec": {"migManager": {"enabled": "yes"}}}
    assert any(e.startswith("spec.migManager.enabled:") for e in clusterpolicy_errors(bad_type))
    bad_default = {**base, "spec": {"migManager": {"config": {"default": "all-enabled"}}}}
    assert any(e.startswith("spec.migManager.config.default:") for e in clusterpolicy_errors(bad_default))


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_renders_for_each_kubernetes_version(version: str) -> None:
    out = template("admissionPolicy.enabled=true", kube_version=version).stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(out) if d}
    assert {"Deployment", "ClusterPolicy", "ValidatingAdmissionPolicy"} <= kinds


def test_older_kubernetes_is_refused() -> None:
    proc = template(kube_version="1.29.0", check=False)
    assert proc.returncode != 0
    assert ">= 1.30.0-0" in proc.stderr


def test_no_wildcards_in_rbac(rendered: dict[str, Docs]) -> None:
    for case, docs in rendered.items():
        for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(key, []), f"{case}: {role['kind']} {role['metadata']['name']}: {rule}"
                assert "nonResourceURLs" not in rule
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def _covers(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] and not r.get("resourceNames")
        for r in rules
    )


@pytest.mark.parametrize("case", ["defaults", "everything", "custom-config"])
def test_operator_holds_every_permission_it_grants(rendered: dict[str, Docs], case: str) -> None:
    """RBAC escalation prevention: the operator may create a (Cluster)Role only if it holds its rules itself."""
    docs = rendered[case]
    cluster_rules = one(docs, "ClusterRole", "gpu-operator")["rules"]
    namespace_rules = cluster_rules + one(docs, "Role", "gpu-operator")["rules"]
    objects = operator_render(parse_spec(spec_of(docs)), ClusterFacts(NAMESPACE, Owner("cluster-policy", "u")))
    granted = by_kind(objects, "ClusterRole") + by_kind(objects, "Role")
    assert granted
    for role in granted:
        held = cluster_rules if role["kind"] == "ClusterRole" else namespace_rules
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert _covers(held, group, resource, verb), (
                            f"the operator grants {verb} {group or 'core'}/{resource} ({role['kind']} "
                            f"{role['metadata']['name']}) but does not hold it"
                        )


def test_bindings_name_the_operator_service_account(rendered: dict[str, Docs]) -> None:
    docs = rendered["defaults"]
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpu-operator", "namespace": NAMESPACE}]
    deploy = one(docs, "Deployment", "gpu-operator")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-operator"
    role = one(docs, "Role", "gpu-operator")
    lease = one(docs, "Lease")
    lease_rules = [r for r in role["rules"] if "leases" in r["resources"]]
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [lease["metadata"]["name"]],
            "verbs": ["get", "update"],
        }
    ]
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--leader-election-id={lease['metadata']['name']}" in args


def test_operator_deployment_is_locked_down(rendered: dict[str, Docs]) -> None:
    pod = one(rendered["defaults"], "Deployment", "gpu-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not sc.get("privileged")
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert "--health-probe-bind-address=:8081" in container["args"]
    assert "--metrics-bind-address=:8080" in container["args"]
    assert set(container["resources"]) == {"limits", "requests"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    env = {e["name"]: e for e in container["env"]}
    assert env["OPERATOR_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["MIG_MANAGER_IMAGE"]["value"] == "ghcr.io/gpu-operator-mig/mig-manager:0.1.0"
    # a writable /tmp on an otherwise read-only root
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_values_yaml_defaults_are_nvidias_where_they_exist(tmp_path: Path) -> None:
    values = yaml.safe_load((ROOT / "charts" / "gpu-operator" / "values.yaml").read_text())
    assert values["mig"]["strategy"] == "single"
    mm = values["migManager"]
    assert mm["enabled"] is True
    assert mm["config"] == {"default": "all-disabled", "name": "", "create": False, "data": {}}
    assert mm["gpuClientsConfig"]["name"] == ""
    assert mm["env"] == [] and mm["resources"] == {} and mm["imagePullPolicy"] == "IfNotPresent"
    assert values["driver"]["enabled"] is True
    assert values["devicePlugin"]["version"] == values["gfd"]["version"] == "v0.20.0"
    assert values["daemonsets"]["priorityClassName"] == "system-node-critical"
    assert values["daemonsets"]["rollingUpdate"] == {"maxUnavailable": "1"}
    assert values["clusterPolicy"]["deployCR"] is True


def test_notes_list_ignored_nvidia_values(tmp_path: Path) -> None:
    from chart_support import CHART, helm

    out = helm(
        "install",
        "gpu",
        str(CHART),
        "-n",
        NAMESPACE,
        "--dry-run=client",
        "--set",
        "toolkit.enabled=false",
        "--set",
        "driver.version=595.91.07",
        "--set",
        "migManager.config.name=mine",
        home=tmp_path,
    ).stdout
    notes = out[out.index("NOTES:") :]
    assert "kubectl label node <node> nvidia.com/mig.config=" in notes
    assert "nvidia.com/mig.config.state" in notes
    assert "ignored: driver.version, toolkit." in notes
    assert f"custom MIG config ConfigMap {NAMESPACE}/mine (not created by this chart" in notes


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_kubernetes_validate_cli_strict(version: str) -> None:
    """The same check through the `kubernetes-validate` command, on the manifest exactly as helm prints it."""
    cli = Path(sys.executable).parent / "kubernetes-validate"
    if not cli.exists():
        pytest.skip("the kubernetes-validate command is not installed")
    manifest = template(*CASES["everything"][0]).stdout
    short = version.rsplit(".", 1)[0]
    proc = subprocess.run(
        [str(cli), "-k", short, "--strict", "-"], input=manifest, capture_output=True, text=True, timeout=120
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ERROR" not in output and "failed" not in output, output
    assert output.count("passed for resource") == len([d for d in yaml.safe_load_all(manifest) if d]) - 1
