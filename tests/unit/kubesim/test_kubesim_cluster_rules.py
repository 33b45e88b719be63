"""Pure parts of the simulated cluster: placement rules, topology files, image rules, env and path translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesim.controllers import scheduling
from kubesim.errors import KubeSimError
from kubesim.runner import PodFiles, expand, write_atomic
from kubesim.store import Store
from kubesim.topology import DEFAULT_IMAGES, ImageRule, default_topology, image_kind, image_name, parse_topology


def node(labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None, name: str = "n1") -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


GATE = "nvidia.com/gpu.deploy.device-plugin"


@pytest.mark.parametrize(
    ("value", "runs"), [("true", True), ("paused-for-mig-change", False), ("false", False), (None, False)]
)
def test_daemon_follows_the_gate_label(value: str | None, runs: bool) -> None:
    spec = {"nodeSelector": {GATE: "true"}}
    labels = {} if value is None else {GATE: value}
    assert scheduling.daemon_should_run(spec, node(labels)) is runs
    assert scheduling.daemon_should_continue(spec, node(labels)) is runs
    assert scheduling.daemon_placement(spec, node(labels)) == (runs, runs)


def test_required_node_affinity_terms_are_ored_and_match_fields() -> None:
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100", "h100"]}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
                    ]
                }
            }
        }
    }
    assert scheduling.node_matches(spec, node({"gpu": "h100"}))
    assert not scheduling.node_matches(spec, node({"gpu": "t4"}))
    assert scheduling.node_matches(spec, node(name="special"))
    gt = {"matchExpressions": [{"key": "count", "operator": "Gt", "values": ["4"]}]}
    assert scheduling.term_matches(gt, node({"count": "8"})) and not scheduling.term_matches(gt, node({"count": "2"}))
    assert not scheduling.term_matches({}, node())  # an empty term matches nothing


def test_taints_and_tolerations() -> None:
    taint = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    assert not scheduling.daemon_should_run({}, node(taints=[taint]))
    assert scheduling.daemon_should_continue({}, node(taints=[taint]))  # NoSchedule never evicts a running pod
    assert scheduling.daemon_placement({}, node(taints=[taint])) == (False, True)
    tolerating = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra"}]}
    assert scheduling.daemon_should_run(tolerating, node(taints=[taint]))
    wrong_value = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}
    assert not scheduling.daemon_should_run(wrong_value, node(taints=[taint]))
    everything = {"tolerations": [{"operator": "Exists"}]}
    assert scheduling.daemon_should_run(everything, node(taints=[taint]))
    # daemon pods tolerate not-ready NoExecute, plain pods do not
    not_ready = {"key": scheduling.NOT_READY_TAINT, "effect": "NoExecute"}
    assert scheduling.daemon_should_continue({}, node(taints=[not_ready]))
    assert scheduling.schedulable_reason({}, node(taints=[not_ready])).startswith("node(s) had untolerated taint")


def test_extended_resources_fit() -> None:
    pod = {"containers": [{"resources": {"limits": {"nvidia.com/mig-1g.10gb": "2"}}}]}
    have = {**node(), "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "3"}}}
    assert scheduling.schedulable_reason(pod, have) == ""
    assert (
        scheduling.schedulable_reason(pod, have, {"nvidia.com/mig-1g.10gb": 2}) == "Insufficient nvidia.com/mig-1g.10gb"
    )


def test_template_hash_is_stable_and_changes_with_the_template() -> None:
    a = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    b = {"spec": {"containers": [{"image": "i:1", "name": "c"}]}, "metadata": {"labels": {"app": "x"}}}
    assert scheduling.template_hash(a) == scheduling.template_hash(b)
    assert scheduling.template_hash(a) != scheduling.template_hash({**a, "spec": {"containers": []}})
    assert len(scheduling.template_hash(a)) == 10


def test_default_topology_nodes() -> None:
    topo = default_topology()
    by_name = {n.name: n for n in topo.nodes}
    assert by_name["node-h100"].gpus == "H100-80GBx8"
    assert by_name["node-a100"].gpus == "A100-40GBx4,A100-80GBx4"
    assert by_name["node-a30"].passthrough and by_name["node-a30"].gpus == "A30x2"
    assert by_name["node-cpu"].gpus == ""
    assert by_name["node-h100"].host_state_file


def test_topology_parsing_and_errors() -> None:
    topo = parse_topology(
        {
            "defaults": {"cpu": "8"},
            "nodes": [{"name": "gpu-{i}", "count": 3, "gpus": "A30x2", "labels": {"zone": 1}}, {"name": "cpu"}],
            "images": [{"match": "example.com/agent:*", "kind": "node-agent", "entrypoint": ["mig-manager"]}],
        }
    )
    assert [n.name for n in topo.nodes] == ["gpu-0", "gpu-1", "gpu-2", "cpu"]
    assert topo.nodes[0].labels == {"zone": "1"} and topo.nodes[3].cpu == "8"
    assert image_kind("example.com/agent:v1", topo.image_rules()).kind == "node-agent"
    with pytest.raises(KubeSimError, match="unknown key"):
        parse_topology({"nodes": [{"name": "x", "gpu": "H100"}]})
    with pytest.raises(KubeSimError, match="duplicate node names: a"):
        parse_topology({"nodes": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(KubeSimError, match="kind 'bogus'"):
        parse_topology({"images": [{"match": "x", "kind": "bogus"}]})


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.15.0", "node-agent"),
        ("ghcr.io/example/gpu-operator-mig-node-agent:0.1.0", "node-agent"),
        ("ghcr.io/example/gpu-operator:0.1.0", "operator"),
        ("nvcr.io/nvidia/k8s-device-plugin:v0.20.0", "nvidia-device-plugin"),
        ("nvcr.io/nvidia/gpu-feature-discovery:v0.8.2", "gpu-feature-discovery"),
        ("nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04", "dcgm-exporter"),
        ("nvcr.io/nvidia/cloud-native/dcgm:4.2.3-1-ubuntu22.04", "dcgm"),
        ("busybox", "pause"),
    ],
)
def test_builtin_image_rules(image: str, kind: str) -> None:
    assert image_kind(image, list(DEFAULT_IMAGES)).kind == kind


def test_image_name() -> None:
    assert image_name("nvcr.io/nvidia/k8s-device-plugin:v0.20.0") == "k8s-device-plugin"
    assert image_name("repo/x@sha256:abc") == "x"
    assert ImageRule(("x",), "pause").matches("registry:5000/a/x:1")


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


def test_pod_files_env_paths_and_volumes(tmp_path: Path) -> None:
    store = Store()
    store.put(
        ("", "configmaps"),
        {"metadata": {"name": "cfg", "namespace": "ns", "resourceVersion": "1"}, "data": {"config.yaml": "a: 1"}},
    )
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
        "spec": {
            "nodeName": "n1",
            "volumes": [
                {
                    "name": "cfg",
                    "configMap": {"name": "cfg", "items": [{"key": "config.yaml", "path": "default.yaml"}]},
                },
                {"name": "host", "hostPath": {"path": "/"}},
                {
                    "name": "info",
                    "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
                },
            ],
        },
    }
    container = {
        "name": "c",
        "command": ["run"],
        "args": ["--config=/cfg/default.yaml", "/host/etc", "$(NODE)"],
        "env": [
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "FILE", "value": "/cfg/default.yaml"},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "config.yaml"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/cfg"},
            {"name": "host", "mountPath": "/host"},
            {"name": "info", "mountPath": "/etc/podinfo"},
        ],
    }
    files = PodFiles(tmp_path / "pod", tmp_path / "root", pod, tmp_path / "kubeconfig", "10.0.0.10", "10.244.0.7")
    files.materialise(store)
    env = files.environment(store, container)
    assert env["NODE"] == "n1" and env["APP"] == "x" and env["KEY"] == "a: 1" and env["IP"] == "10.244.0.7"
    assert Path(env["FILE"]).read_text() == "a: 1"
    argv = files.argv(container, env, ())
    assert argv[0] == "run"
    assert argv[1].startswith("--config=") and Path(argv[1].split("=", 1)[1]).read_text() == "a: 1"
    assert argv[2] == str(tmp_path / "root" / "etc")
    assert argv[3] == "n1"
    assert (files.volumes["info"] / "labels").read_text() == 'app="x"'
    # a ConfigMap edit is written atomically: `..data` is swapped, the key's path stays
    before = (files.volumes["cfg"] / "..data").resolve()
    store.put(
        ("", "configmaps"),
        {"metadata": {"name": "cfg", "namespace": "ns", "resourceVersion": "2"}, "data": {"config.yaml": "a: 2"}},
    )
    assert files.refresh(store, ("", "configmaps"), "cfg")
    assert Path(env["FILE"]).read_text() == "a: 2"
    assert (files.volumes["cfg"] / "..data").resolve() != before
    assert not before.exists()  # the old generation is removed
    assert not files.refresh(store, ("", "configmaps"), "cfg")  # nothing changed


def test_write_atomic_removes_keys_that_went(tmp_path: Path) -> None:
    write_atomic(tmp_path, {"a": b"1", "b": b"2"})
    write_atomic(tmp_path, {"a": b"3"})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..")) == ["a"]
    assert (tmp_path / "a").read_text() == "3"
