"""Bad ClusterPolicy specs through the API of kubesim with the real CRD: rejected with 422 naming the field path and
nothing changed, or stored and reported in the conditions computed by the operator's pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from corpus_support import missing, params
from kubernetes import client

from gpu_operator.policy import parse_spec, unsupported_fields
from gpu_operator.status import Observed, compute_status
from gpu_operator.validation import NodeFacts, summarize, validate_gpu_clients_config, validate_mig_config
from kubesim.server import Config, KubeSim
from kubesim.testing import kube_client, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "nvidia.com_clusterpolicies.yaml"
NS = "gpu-operator"
GROUP, VERSION, PLURAL = "nvidia.com", "v1", "clusterpolicies"
VALID = {"mig": {"strategy": "single"}, "migManager": {"enabled": True}}


@pytest.fixture(scope="module")
def custom() -> Iterator[client.CustomObjectsApi]:
    """kubesim with the CRD and one valid ClusterPolicy, `cluster-policy`, for the whole module."""
    with KubeSim(Config(bookmark_interval=1.0)) as sim:
        api = kube_client(sim)
        client.ApiextensionsV1Api(api).create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
        objects = client.CustomObjectsApi(api)
        wait_for(lambda: _try_list(objects), timeout=10, what="the ClusterPolicy resource")
        objects.create_cluster_custom_object(GROUP, VERSION, PLURAL, doc("cluster-policy", VALID))
        yield objects


def _try_list(objects: client.CustomObjectsApi) -> bool:
    try:
        objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    except client.ApiException:
        return False
    return True


def doc(name: str, spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterPolicy", "metadata": {"name": name}, "spec": spec}


def names(objects: client.CustomObjectsApi) -> list[str]:
    return sorted(i["metadata"]["name"] for i in objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])


def rejection(call: Any) -> tuple[int, str]:
    try:
        call()
    except client.ApiException as exc:
        return exc.status, json.loads(exc.body).get("message", exc.body)
    return 0, "accepted"


def conditions(stored: dict[str, Any], case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the operator's reconcile computes for this policy, cluster and ConfigMaps, without its I/O."""
    spec = parse_spec(stored.get("spec"))
    configmaps = {name: {"data": data} for name, data in (case.get("configmaps") or {}).items()}
    nodes = [
        NodeFacts(name, dict(n.get("labels") or {}), dict(n.get("annotations") or {}))
        for name, n in (case.get("nodes") or {"gpu-1": {"labels": {"nvidia.com/gpu.present": "true"}}}).items()
    ]
    findings = []
    if spec.mig_manager.custom_config_name() is not None:
        findings += validate_mig_config(spec, NS, configmaps.get(spec.mig_manager.custom_config_name() or ""), nodes)
    findings += validate_gpu_clients_config(spec, NS, configmaps.get(spec.mig_manager.gpu_clients_config_map()))
    observed = Observed(
        namespace=NS,
        generation=int(stored["metadata"].get("generation") or 1),
        daemonsets={},
        gpu_nodes=sum(1 for n in nodes if n.labels.get("nvidia.com/gpu.present") == "true"),
        unsupported=unsupported_fields(spec),
        mig_config_problem=summarize(findings) if findings else None,
    )
    status = compute_status(observed, None, "2026-01-01T00:00:00Z")
    return {c["type"]: c for c in status["conditions"]}


@pytest.mark.parametrize("case", params("clusterpolicy"))
def test_bad_clusterpolicy(case: dict[str, Any], custom: client.CustomObjectsApi) -> None:
    existing = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "cluster-policy")
    if "rejected" in case:
        spec = case["rejected"]
        code, message = rejection(lambda: custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, doc("bad", spec)))
        if code == 0:
            custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "bad")
        assert code == 422, f"create answered {code}: {message}"
        assert not missing(message, case["expect"]), (
            f"create: message lacks {missing(message, case['expect'])}: {message}"
        )
        code, message = rejection(
            lambda: custom.patch_cluster_custom_object(
                GROUP, VERSION, PLURAL, "cluster-policy", {"spec": spec}, _content_type="application/merge-patch+json"
            )
        )
        assert code == 422, f"merge patch answered {code}: {message}"
        assert not missing(message, case["expect"]), (
            f"patch: message lacks {missing(message, case['expect'])}: {message}"
        )
        assert names(custom) == ["cluster-policy"]
        after = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "cluster-policy")
        assert after["metadata"]["resourceVersion"] == existing["metadata"]["resourceVersion"]
        return
    stored = custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, doc("accepted", case["accepted"]))
    try:
        found = conditions(stored, case)
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, "accepted")
    cond = found[case["condition"]]
    assert cond["reason"] == case["reason"], cond
    assert cond["status"] == "True", cond
    assert not missing(cond["message"], case["expect"]), f"message lacks {missing(cond['message'], case['expect'])}"
    after = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "cluster-policy")
    assert after["metadata"]["resourceVersion"] == existing["metadata"]["resourceVersion"]
