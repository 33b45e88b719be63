"""The chart against kubesim with the real helm: install, upgrade with a custom config, uninstall.

kubesim's API server with its workload-status writer stands in for the cluster. The operator runs as a real process
started from the installed Deployment's own command, args and env (what the kubelet would run), with the chart's
ServiceAccount permissions checked request by request: every call the operator makes must be allowed by the chart's
ClusterRole and Role.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from chart_support import CHART, NAMESPACE, ROOT, need_helm

from kubesim.server import Config, KubeSim
from kubesim.store import GroupResource
from kubesim.testing import Tools, wait_for

TIMEOUT = 90.0
NODE = "gpu-node-1"
CUSTOM_CONFIG = """version: v1
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
CRD = ("apiextensions.k8s.io", "customresourcedefinitions")
POLICIES = ("nvidia.com", "clusterpolicies")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    need_helm()
    with KubeSim(Config(bookmark_interval=1.0, record_requests=True)) as server:
        yield server


@pytest.fixture
def tools(sim: KubeSim, tmp_path: Path) -> Tools:
    home = tmp_path / "home"
    home.mkdir()
    return Tools(sim, home)


Key = tuple[GroupResource, str, str]


def inventory(sim: KubeSim) -> dict[Key, dict[str, Any]]:
    """Every object in the store, by (group-resource, namespace, name)."""

    def read() -> dict[Key, dict[str, Any]]:
        assert sim.cluster is not None
        return {(gr, s.namespace, s.name): s.copy() for gr, s in sim.cluster.store.all_objects()}

    return sim.call(read)


def get(sim: KubeSim, group: str, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        assert sim.cluster is not None
        stored = sim.cluster.store.get((group, resource), namespace, name)
        return None if stored is None else stored.copy()

    return sim.call(read)


# ---------------------------------------------------------------------------------------------------------------------
# The operator as its pod would run it
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class OperatorPod:
    proc: subprocess.Popen[bytes]
    health_port: int
    log: Path

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_operator(sim: KubeSim, deployment: dict[str, Any], log: Path) -> OperatorPod:
    """Run the Deployment's container as a local process: its command and args (ports moved to free local ones, the
    kubeconfig of kubesim added), its env with the downward API resolved."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    health, metrics = free_port(), free_port()
    args = []
    for arg in container["args"]:
        if arg.startswith("--health-probe-bind-address="):
            arg = f"--health-probe-bind-address=127.0.0.1:{health}"
        elif arg.startswith("--metrics-bind-address="):
            arg = f"--metrics-bind-address=127.0.0.1:{metrics}"
        args.append(arg)
    args.append(f"--kubeconfig={sim.kubeconfig}")
    assert container["command"] == ["gpu-operator"]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE") and k != "KUBECONFIG"}
    fields = {"metadata.namespace": deployment["metadata"]["namespace"], "metadata.name": "gpu-operator-pod-1"}
    for var in container["env"]:
        if "valueFrom" in var:
            env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[var["name"]] = var["value"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpu_operator", *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    return OperatorPod(proc, health, log)


# ---------------------------------------------------------------------------------------------------------------------
# RBAC: is a request allowed by the chart's rules?
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attributes:
    verb: str
    group: str
    resource: str
    namespace: str
    name: str


def attributes(method: str, target: str, status: int) -> list[Attributes]:
    """The authorisation attributes of one request, as the API server derives them ([] for discovery/OpenAPI)."""
    url = urlsplit(target)
    parts = [p for p in url.path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return []  # /version, /api, /apis, /apis/G, /openapi/...: allowed to every authenticated user
    if not rest:
        return []
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    query = parse_qs(url.query)
    verb = {
        "GET": "get" if name else ("watch" if query.get("watch", [""])[0] in ("1", "true") else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    found = [Attributes(verb, group, resource, namespace, name)]
    if method == "PATCH" and status == 201:  # an apply that creates needs create too
        found.append(Attributes("create", group, resource, namespace, name))
    return found


def allowed(request: Attributes, cluster_rules: list[dict[str, Any]], role_rules: list[dict[str, Any]]) -> bool:
    rules = cluster_rules + (role_rules if request.namespace == NAMESPACE else [])
    for rule in rules:
        if request.group not in rule["apiGroups"] or request.resource not in rule["resources"]:
            continue
        if request.verb not in rule["verbs"]:
            continue
        names = rule.get("resourceNames")
        if names and request.name not in names:
            continue
        return True
    return False


# ---------------------------------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------------------------------


def add_gpu_node(tools: Tools) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "labels": {
                "kubernetes.io/hostname": NODE,
                "feature.node.kubernetes.io/pci-10de.present": "true",
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                "nvidia.com/mig.capable": "true",
            },
        },
    }
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(node))


def release_name(tools: Tools) -> str:
    releases = json.loads(tools.helm("list", "-n", NAMESPACE, "-o", "json").stdout)
    assert len(releases) == 1, releases
    return str(releases[0]["name"])


def mig_manager_env(sim: KubeSim) -> dict[str, str]:
    ds = get(sim, "apps", "daemonsets", NAMESPACE, "nvidia-mig-manager")
    if ds is None:
        return {}
    container = ds["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_install_upgrade_uninstall(sim: KubeSim, tools: Tools, tmp_path: Path) -> None:
    add_gpu_node(tools)
    before = inventory(sim)

    # install, exactly as the docs say (plus the admission policy, so that uninstall must remove it too)
    out = tools.helm(
        "install",
        "--wait",
        "--timeout=120s",
        "--generate-name",
        "-n",
        NAMESPACE,
        "--create-namespace",
        str(CHART),
        "--set",
        "mig.strategy=single",
        "--set",
        "admissionPolicy.enabled=true",
    ).stdout
    assert "STATUS: deployed" in out
    assert "kubectl label node <node> nvidia.com/mig.config=" in out  # NOTES
    release = release_name(tools)
    assert get(sim, *CRD, "", "clusterpolicies.nvidia.com") is not None
    policy = get(sim, *POLICIES, "", "cluster-policy")
    assert policy is not None and policy["spec"]["mig"] == {"strategy": "single"}
    deployment = get(sim, "apps", "deployments", NAMESPACE, "gpu-operator")
    assert deployment is not None
    assert get(sim, "coordination.k8s.io", "leases", NAMESPACE, "53822513.nvidia.com") is not None

    # a CRD left by an older release: helm never upgrades crds/, the operator applies its own CRD at start
    tools.kubectl(
        "annotate", "crd", "clusterpolicies.nvidia.com", "nvidia.com/gpu-operator.version=0.0.1", "--overwrite"
    )

    # the operator's pod
    cluster_rules = get(sim, "rbac.authorization.k8s.io", "clusterroles", "", "gpu-operator")
    role_rules = get(sim, "rbac.authorization.k8s.io", "roles", NAMESPACE, "gpu-operator")
    assert cluster_rules is not None and role_rules is not None
    first_request = len(sim.requests())
    operator = start_operator(sim, deployment, tmp_path / "operator.log")
    try:
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
        wait_for(lambda: operator.get(probe) == 200, TIMEOUT, what=f"the operator's {probe}")
        live = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"]
        assert operator.get(live) == 200

        def operands_ready() -> bool:
            node = get(sim, "", "nodes", "", NODE) or {}
            labels = node.get("metadata", {}).get("labels", {})
            policy = get(sim, *POLICIES, "", "cluster-policy") or {}
            return (
                bool(mig_manager_env(sim))
                and get(sim, "", "configmaps", NAMESPACE, "default-mig-parted-config") is not None
                and labels.get("nvidia.com/gpu.deploy.mig-manager") == "true"
                and labels.get("nvidia.com/mig.config") == "all-disabled"
                and policy.get("status", {}).get("state") == "ready"
            )

        wait_for(operands_ready, TIMEOUT, what="the operator's operands, node labels and a ready ClusterPolicy")
        crd = get(sim, *CRD, "", "clusterpolicies.nvidia.com") or {}
        assert crd["metadata"]["annotations"]["nvidia.com/gpu-operator.version"] == "0.1.0"
        lease = get(sim, "coordination.k8s.io", "leases", NAMESPACE, "53822513.nvidia.com") or {}
        assert lease.get("spec", {}).get("holderIdentity") == "gpu-operator-pod-1"
        assert mig_manager_env(sim)["DEFAULT_CONFIG_FILE"] == "/mig-parted-config/config-default.yaml"
        assert get(sim, "apps", "daemonsets", NAMESPACE, "nvidia-mig-manager")["spec"]["template"]["spec"][
            "containers"
        ][0]["image"] == ("ghcr.io/gpu-operator-mig/mig-manager:0.1.0")

        # upgrade with a custom config created by the chart, and the mixed strategy (helm's own requests are not the
        # operator's: only the windows when helm is not running are checked below)
        operator_requests = sim.requests()[first_request:]
        values = tmp_path / "custom.yaml"
        values.write_text(
            yaml.safe_dump(
                {
                    "mig": {"strategy": "mixed"},
                    "migManager": {
                        "config": {"create": True, "name": "custom-mig-config", "data": {"config.yaml": CUSTOM_CONFIG}}
                    },
                }
            )
        )
        out = tools.helm(
            "upgrade",
            release,
            str(CHART),
            "-n",
            NAMESPACE,
            "--wait",
            "--timeout=120s",
            "--reuse-values",
            "-f",
            str(values),
        ).stdout
        after_upgrade = len(sim.requests())
        assert "STATUS: deployed" in out
        configmap = get(sim, "", "configmaps", NAMESPACE, "custom-mig-config")
        assert configmap is not None and configmap["data"] == {"config.yaml": CUSTOM_CONFIG}
        policy = get(sim, *POLICIES, "", "cluster-policy")
        assert policy is not None
        assert policy["spec"]["mig"] == {"strategy": "mixed"}
        assert policy["spec"]["migManager"]["config"] == {"name": "custom-mig-config", "default": "all-disabled"}
        assert get(
            sim,
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            "",
            "gpu-operator-mig-manager-node-scope",
        )
        wait_for(
            lambda: mig_manager_env(sim).get("CONFIG_FILE") == "/mig-parted-config/config.yaml",
            TIMEOUT,
            what="the MIG manager DaemonSet using the custom config",
        )
        wait_for(
            lambda: (get(sim, *POLICIES, "", "cluster-policy") or {}).get("status", {}).get("state") == "ready",
            TIMEOUT,
            what="the ClusterPolicy ready with the custom config",
        )
    finally:
        operator.stop()  # the Deployment's pod goes first, as helm deletes the Deployment before the ClusterPolicy
    assert operator.proc.returncode == 0, operator.output()
    operator_requests += sim.requests()[after_upgrade:]

    # least privilege, proven on the wire: every request the operator made is allowed by the chart's RBAC
    denied = [
        (method, target, status)
        for method, target, status in operator_requests
        for request in attributes(method, target, status)
        if not allowed(request, cluster_rules["rules"], role_rules["rules"])
    ]
    assert denied == [], "requests the chart's RBAC would deny:\n" + "\n".join(map(str, denied[:20]))
    assert operator_requests, "no request of the operator was recorded"

    # uninstall: everything the chart and the operator created goes, the CRD stays (as Helm does)
    out = tools.helm("uninstall", release, "-n", NAMESPACE, "--wait", "--timeout=120s").stdout
    assert "uninstalled" in out

    kept_kinds = {("", "events"), ("events.k8s.io", "events")}  # they expire by TTL on a real cluster

    def leftovers() -> list[Key]:
        return sorted(
            key
            for key in inventory(sim)
            if key not in before
            and key[0] not in kept_kinds
            and key != (("", "namespaces"), "", NAMESPACE)  # helm never deletes the namespace it created
            and key != (CRD, "", "clusterpolicies.nvidia.com")
        )

    def nothing_left() -> bool:
        return not leftovers()

    try:
        wait_for(nothing_left, TIMEOUT, what="the release's and the operator's objects to be gone")
    except AssertionError:
        pytest.fail(f"left after helm uninstall: {leftovers()}")
    assert get(sim, *CRD, "", "clusterpolicies.nvidia.com") is not None
    assert tools.helm("list", "-n", NAMESPACE, "-q").stdout.strip() == ""
