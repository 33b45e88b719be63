"""The chart on kubesim's simulated GPU cluster (kubesim part 2: controllers, kubelets, GPU nodes, this project's
images run as processes): install exactly as the docs say, upgrade with a custom config, uninstall, nothing left.

Skipped where kubesim has no simulated cluster (`Config.topology`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, NAMESPACE, need_helm
from test_chart_install import CRD, CUSTOM_CONFIG, POLICIES, get, inventory

from kubesim.server import Config, KubeSim
from kubesim.testing import Tools, wait_for

TIMEOUT = 120.0
LEASE = "53822513.nvidia.com"

pytestmark = pytest.mark.skipif(
    "topology" not in {f.name for f in dataclasses.fields(Config)}, reason="kubesim has no simulated cluster yet"
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeSim, Tools]]:
    need_helm()
    with KubeSim(Config(topology="default", bookmark_interval=1.0)) as sim:
        home = tmp_path / "home"
        home.mkdir()
        yield sim, Tools(sim, home)


def pods(tools: Tools) -> list[dict[str, Any]]:
    return list(json.loads(tools.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"])


def running(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return pod.get("status", {}).get("phase") == "Running" and conditions.get("Ready") == "True"


def mig_nodes(tools: Tools) -> dict[str, dict[str, str]]:
    nodes = json.loads(tools.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {
        n["metadata"]["name"]: n["metadata"]["labels"]
        for n in nodes
        if n["metadata"]["labels"].get("nvidia.com/gpu.deploy.mig-manager") == "true"
    }


def policy_state(sim: KubeSim) -> str:
    return str(((get(sim, *POLICIES, "", "cluster-policy") or {}).get("status") or {}).get("state", ""))


def collectable(objects: dict[Any, dict[str, Any]]) -> set[Any]:
    """What a real garbage collector deletes: objects whose owners are all gone, transitively. (kubesim's collects
    the dependents of owners it sees deleted, not those created afterwards, as by an operator's reconcile that was
    already under way when helm deleted the ClusterPolicy; the real one looks every owner up.)"""
    alive = {str((obj.get("metadata") or {}).get("uid")) for obj in objects.values()}
    gone: set[Any] = set()
    changed = True
    while changed:
        changed = False
        for key, obj in objects.items():
            owners = (obj.get("metadata") or {}).get("ownerReferences") or []
            if key not in gone and owners and all(str(o.get("uid")) not in alive for o in owners):
                gone.add(key)
                alive.discard(str((obj.get("metadata") or {}).get("uid")))
                changed = True
    return gone


def released_by_the_operator(lease: dict[str, Any]) -> bool:
    labels = (lease.get("metadata") or {}).get("labels") or {}
    return "app.kubernetes.io/managed-by" not in labels and not (lease.get("spec") or {}).get("holderIdentity")


def test_install_upgrade_uninstall_on_the_simulated_cluster(cluster: tuple[KubeSim, Tools], tmp_path: Path) -> None:
    sim, tools = cluster
    before = inventory(sim)

    out = tools.helm(
        "install",
        "--wait",
        "--generate-name",
        "-n",
        NAMESPACE,
        "--create-namespace",
        str(CHART),
        "--set",
        "mig.strategy=single",
    ).stdout
    assert "STATUS: deployed" in out
    release = json.loads(tools.helm("list", "-n", NAMESPACE, "-o", "json").stdout)[0]["name"]

    def installed() -> bool:
        current = pods(tools)
        names = {p["metadata"]["name"].rsplit("-", 2)[0] for p in current if running(p)}
        nodes = mig_nodes(tools)
        return (
            "gpu-operator" in names
            and sum(p["metadata"]["name"].startswith("nvidia-mig-manager-") and running(p) for p in current)
            == len(nodes)
            > 0
            and all(
                labels.get("nvidia.com/mig.config") == "all-disabled"
                and labels.get("nvidia.com/mig.config.state") == "success"
                for labels in nodes.values()
            )
            and policy_state(sim) == "ready"
        )

    wait_for(installed, TIMEOUT, interval=0.2, what="the operator, a MIG manager per MIG node, all-disabled, ready")
    lease = get(sim, "coordination.k8s.io", "leases", NAMESPACE, LEASE) or {}
    assert (lease.get("spec") or {}).get("holderIdentity", "").startswith("gpu-operator-")

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
        "upgrade", release, str(CHART), "-n", NAMESPACE, "--wait", "--reuse-values", "-f", str(values)
    ).stdout
    assert "STATUS: deployed" in out

    def upgraded() -> bool:
        ds = get(sim, "apps", "daemonsets", NAMESPACE, "nvidia-mig-manager") or {}
        containers = ds.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
        env = {e["name"]: e.get("value") for e in containers[0].get("env", [])}
        return env.get("CONFIG_FILE") == "/mig-parted-config/config.yaml" and policy_state(sim) == "ready"

    wait_for(upgraded, TIMEOUT, interval=0.2, what="the MIG manager on the chart's custom config, the policy ready")

    # no --wait here: kubesim enforces no RBAC, so an operator still terminating may recreate the Lease helm just
    # deleted, and helm would wait for it to go (on a real cluster the chart's Role forbids that create); the wait
    # below covers it, and test_chart_install runs `helm uninstall --wait`
    proc = tools.helm("uninstall", release, "-n", NAMESPACE, "--timeout=100s", "--debug", check=False)
    if proc.returncode != 0:
        left = sorted((key for key in inventory(sim) if key not in before), key=str)
        pytest.fail(f"helm uninstall failed:\n{proc.stderr[-3000:]}\nobjects: {left}")

    def leftovers() -> list[Any]:
        everything = inventory(sim)
        gone = collectable(everything)
        objects = {key: obj for key, obj in everything.items() if key not in before}
        found = []
        for key, obj in objects.items():
            gr, namespace, name = key
            if key in gone or gr in {("", "events"), ("events.k8s.io", "events")}:
                continue
            if key in {(("", "namespaces"), "", NAMESPACE), (CRD, "", "clusterpolicies.nvidia.com")}:
                continue
            if gr == ("coordination.k8s.io", "leases") and name == LEASE and released_by_the_operator(obj):
                # kubesim enforces no RBAC: a terminating operator renewing after helm deleted the Lease recreates
                # it here; the chart's Role grants no lease create, so a real cluster refuses that (test_chart_install
                # checks every request of the operator against the chart's RBAC)
                continue
            found.append((gr, namespace, name, (obj.get("metadata") or {}).get("deletionTimestamp")))
        return sorted(found, key=str)

    try:
        wait_for(lambda: not leftovers(), TIMEOUT, interval=0.2, what="nothing left of the release and the operator")
    except AssertionError:
        pytest.fail(f"left after helm uninstall: {leftovers()}")
    assert get(sim, *CRD, "", "clusterpolicies.nvidia.com") is not None
