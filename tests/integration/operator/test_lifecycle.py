"""Operator lifecycle against kubesim: its own CRD at start, leader election between replicas, failures reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from operator_harness import CRD, HELM_SPEC, NS, PCI, TIMEOUT, Cluster, OperatorProcess, policy_doc

from kubesim.server import KubeSim
from kubesim.testing import Tools, wait_for


@pytest.fixture
def bare(kubesim: KubeSim, kubesim_tools: Tools) -> Cluster:
    """A cluster with the operator namespace but without the CRD."""
    c = Cluster(kubesim, kubesim_tools)
    c.kubectl("create", "namespace", NS)
    return c


def _crd_version(cluster: Cluster) -> str:
    out = cluster.kubectl("get", "crd", "clusterpolicies.nvidia.com", "-o", "json")
    return str(json.loads(out)["metadata"]["annotations"]["nvidia.com/gpu-operator.version"])


def test_operator_applies_its_crd_when_missing(bare: Cluster, operator: OperatorProcess) -> None:
    operator.start()
    wait_for(lambda: "clusterpolicies.nvidia.com" in bare.kubectl("get", "crd", "-o", "name"), TIMEOUT, 0.2, "CRD")
    bare.apply(policy_doc(**HELM_SPEC))
    wait_for(lambda: bare.state() == "ready", TIMEOUT, 0.1, "ready")


def test_operator_replaces_an_older_crd_only(bare: Cluster, operator: OperatorProcess, tmp_path: Path) -> None:
    old = yaml.safe_load(CRD.read_text())
    old["metadata"]["annotations"]["nvidia.com/gpu-operator.version"] = "0.0.1"
    path = tmp_path / "old-crd.yaml"
    path.write_text(yaml.safe_dump(old))
    bare.kubectl("apply", "--server-side", "-f", str(path))
    operator.start()
    wait_for(lambda: _crd_version(bare) != "0.0.1", TIMEOUT, 0.2, "CRD upgraded")
    operator.stop()
    newer = yaml.safe_load(CRD.read_text())
    newer["metadata"]["annotations"]["nvidia.com/gpu-operator.version"] = "99.0.0"
    path.write_text(yaml.safe_dump(newer))
    bare.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    operator.start()
    wait_for(lambda: operator.reconciles() >= 1, TIMEOUT, 0.1, "reconciled")
    assert _crd_version(bare) == "99.0.0"  # a newer CRD is left alone


def test_leader_election_hands_over(cluster: Cluster, kubesim: KubeSim, tmp_path: Path) -> None:
    args = ["--leader-elect", "--lease-duration=10"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = OperatorProcess(kubesim, tmp_path / "a", args).start()
    wait_for(lambda: first.health("/readyz") == 200, TIMEOUT, 0.1, "first replica leads")
    second = OperatorProcess(kubesim, tmp_path / "b", args).start()
    try:
        wait_for(lambda: second.health("/healthz") == 200, TIMEOUT, 0.1, "second replica is up")
        assert second.health("/readyz") == 500 and second.reconciles() == 0  # standing by
        assert first.metric("is_leader") == 1 and second.metric("is_leader") == 0
        cluster.add_node("gpu-1", {**PCI, "nvidia.com/mig.capable": "true"})
        cluster.apply(policy_doc(**HELM_SPEC))
        wait_for(lambda: cluster.state() == "ready", TIMEOUT, 0.1, "ready under the first replica")
        first.stop()  # releases the lease
        wait_for(lambda: second.health("/readyz") == 200, TIMEOUT, 0.1, "second replica takes over")
        patch = [{"op": "replace", "path": "/spec/mig/strategy", "value": "mixed"}]
        cluster.kubectl("patch", "clusterpolicies/cluster-policy", "--type=json", "-p", json.dumps(patch))
        wait_for(
            lambda: cluster.env("gpu-feature-discovery").get("MIG_STRATEGY") == "mixed",
            TIMEOUT,
            0.1,
            "the new leader reconciles",
        )
    finally:
        first.stop()
        second.stop()


def test_bad_image_spec_is_reported_and_nothing_applied(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.add_node("gpu-1", PCI)
    spec = json.loads(json.dumps(HELM_SPEC))
    spec["migManager"].update(repository="registry.local", image="mig-manager")  # no version
    cluster.apply(policy_doc(**spec))
    operator.start()

    def failed() -> str:
        c = cluster.condition("Error")
        return str(c.get("message", "")) if c.get("reason") == "ReconcileFailed" else ""

    assert "repository, image and version must all be set" in wait_for(failed, TIMEOUT, 0.1, "ReconcileFailed")
    assert cluster.state() == "notReady"
    assert cluster.daemonset("nvidia-device-plugin-daemonset") is None
    cluster.wait_warnings(["ReconcileFailed"])
    patch = [{"op": "add", "path": "/spec/migManager/version", "value": "v1"}]
    cluster.kubectl("patch", "clusterpolicies/cluster-policy", "--type=json", "-p", json.dumps(patch))
    wait_for(lambda: cluster.state() == "ready", TIMEOUT, 0.1, "ready after the fix")
    ds = cluster.daemonset("nvidia-mig-manager")
    assert ds is not None
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/mig-manager:v1"


def test_status_and_metrics(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.add_node("gpu-1", PCI)
    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    wait_for(lambda: cluster.state() == "ready", TIMEOUT, 0.1, "ready")
    status = cluster.policy()["status"]
    assert status["namespace"] == NS
    ready = cluster.condition("Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == cluster.policy()["metadata"]["generation"]
    assert cluster.condition("Error")["status"] == "False"
    wait_for(lambda: operator.metric("clusterpolicy_ready") == 1, TIMEOUT, 0.1, "ready metric")
    assert operator.metric("gpu_nodes") == 1
    out = cluster.kubectl("get", "clusterpolicies")
    assert "STATUS" in out and "STRATEGY" in out and "single" in out and "ready" in out


def test_sigterm_stops_the_operator_promptly(cluster: Cluster, operator: OperatorProcess) -> None:
    """kopf takes SIGTERM itself; the operator's own stop flag must follow it, or kopf waits 5 s for its waiter (a
    rolling update or a drain would pay that on every operator pod)."""
    import time

    cluster.apply(policy_doc(**HELM_SPEC))
    operator.start()
    wait_for(lambda: cluster.state() == "ready", TIMEOUT, 0.1, "ready")
    assert operator.proc is not None
    started = time.monotonic()
    operator.proc.terminate()
    assert operator.proc.wait(30) == 0
    assert time.monotonic() - started < 3.0, "the operator took kopf's 5 s hung-task timeout to stop"
    assert "stopped" in operator.logs().splitlines()[-1]
