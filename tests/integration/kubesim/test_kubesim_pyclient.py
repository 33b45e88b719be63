"""Conformance with the kubernetes Python client: CRUD, selectors, patch types, conflicts, status rules, finalizers,
garbage collection, subresources and fault injection."""

from __future__ import annotations

import http.client
import json
import urllib.request
from typing import Any
from urllib.parse import urlparse

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubesim.server import Config, KubeSim
from kubesim.testing import kube_client, wait_for

NS = "default"


@pytest.fixture
def core(kubesim: KubeSim) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client(kubesim))


@pytest.fixture
def apps(kubesim: KubeSim) -> client.AppsV1Api:
    return client.AppsV1Api(kube_client(kubesim))


def _cm(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}, **meta},
        "data": {"k": "v"},
    }


def _reason(exc: ApiException) -> str:
    return str(json.loads(exc.body)["reason"])


def _deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }


def test_list_kind_resource_version_and_every_label_operator(core: client.CoreV1Api) -> None:
    specs = {
        "a": {"env": "prod", "tier": "web"},
        "b": {"env": "dev", "tier": "web"},
        "c": {"env": "qa"},
        "d": {"gpu": "4"},
    }
    for name, labels in specs.items():
        core.create_namespaced_config_map(NS, _cm(name, labels))
    listing = core.list_namespaced_config_map(NS)
    assert listing.kind == "ConfigMapList" and listing.api_version == "v1"
    assert int(listing.metadata.resource_version) >= 4

    def names(selector: str) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(NS, label_selector=selector).items]

    assert names("env=prod") == ["a"]
    assert names("env==prod") == ["a"]
    assert names("env!=prod") == ["b", "c", "d"]
    assert names("env in (prod,dev)") == ["a", "b"]
    assert names("env notin (prod,dev)") == ["c", "d"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c", "d"]
    assert names("tier=web,env!=dev") == ["a"]
    assert names("gpu>2") == ["d"]
    assert names("gpu<2") == []
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(NS, label_selector="env in prod")
    assert bad.value.status == 400


def test_pagination_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(7):
        core.create_namespaced_config_map(NS, _cm(f"p{i}"))
    seen: list[str] = []
    token = None
    while True:
        page = core.list_namespaced_config_map(NS, limit=3, _continue=token)
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"p{i}" for i in range(7)]


def test_conflicts_and_already_exists(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, _cm("c1"))
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_config_map(NS, _cm("c1"))
    assert dup.value.status == 409 and _reason(dup.value) == "AlreadyExists"
    created.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("c1", NS, created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"k": "3"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("c1", NS, created)  # still carries the old resourceVersion
    assert stale.value.status == 409 and _reason(stale.value) == "Conflict"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", NS)
    assert missing.value.status == 404 and json.loads(missing.value.body)["message"] == 'configmaps "nope" not found'
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("no-such-ns", _cm("c2"))
    assert no_ns.value.status == 404 and json.loads(no_ns.value.body)["message"] == 'namespaces "no-such-ns" not found'
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(NS, _cm("Bad_Name"))
    assert invalid.value.status == 422 and _reason(invalid.value) == "Invalid"
    assert json.loads(invalid.value.body)["details"]["causes"][0]["field"] == "metadata.name"


def test_patch_types(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, _cm("m1", {"a": "1"}))
    core.patch_namespaced_config_map(
        "m1",
        NS,
        {"data": {"x": "1"}, "metadata": {"labels": {"a": None}}},
        _content_type="application/merge-patch+json",
    )
    cm = core.read_namespaced_config_map("m1", NS)
    assert cm.data == {"k": "v", "x": "1"} and not cm.metadata.labels
    core.patch_namespaced_config_map(
        "m1", NS, [{"op": "remove", "path": "/data/k"}], _content_type="application/json-patch+json"
    )
    assert core.read_namespaced_config_map("m1", NS).data == {"x": "1"}
    core.patch_namespaced_config_map(
        "m1", NS, {"data": {"y": "2"}}, _content_type="application/strategic-merge-patch+json"
    )
    assert core.read_namespaced_config_map("m1", NS).data == {"x": "1", "y": "2"}
    # A JSON patch whose test fails is 422 Invalid (kopf relies on it), and changes nothing.
    rv = core.read_namespaced_config_map("m1", NS).metadata.resource_version
    with pytest.raises(ApiException) as failed:
        core.patch_namespaced_config_map(
            "m1",
            NS,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                {"op": "add", "path": "/data/z", "value": "3"},
            ],
            _content_type="application/json-patch+json",
        )
    assert failed.value.status == 422 and _reason(failed.value) == "Invalid"
    assert core.read_namespaced_config_map("m1", NS).metadata.resource_version == rv
    # A merge patch with a stale resourceVersion is a conflict.
    with pytest.raises(ApiException) as stale:
        core.patch_namespaced_config_map(
            "m1",
            NS,
            {"metadata": {"resourceVersion": "1"}, "data": {"z": "3"}},
            _content_type="application/merge-patch+json",
        )
    assert stale.value.status == 409


def test_server_side_apply_creates_updates_and_removes(kubesim: KubeSim) -> None:
    def apply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            f"{kubesim.url}/api/v1/namespaces/default/configmaps/ssa?fieldManager=tester",
            method="PATCH",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())

    status, obj = apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "2"}}
    )
    assert status == 201 and obj["data"] == {"a": "1", "b": "2"}
    status, obj = apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "9"}})
    assert status == 200 and obj["data"] == {"a": "9"}


def test_generate_name_uid_timestamp_and_generation(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "gen-"}, "data": {}})
    assert cm.metadata.name.startswith("gen-") and len(cm.metadata.name) == 9
    assert cm.metadata.uid and cm.metadata.creation_timestamp
    d = apps.create_namespaced_deployment(NS, _deployment("g1"))
    assert d.metadata.generation == 1
    apps.patch_namespaced_deployment("g1", NS, {"metadata": {"labels": {"x": "y"}}})
    assert apps.read_namespaced_deployment("g1", NS).metadata.generation == 1  # metadata does not bump
    apps.patch_namespaced_deployment("g1", NS, {"spec": {"replicas": 3}})
    d = apps.read_namespaced_deployment("g1", NS)
    assert d.metadata.generation == 2
    wait_for(lambda: apps.read_namespaced_deployment("g1", NS).status.observed_generation == 2)


def test_status_subresource_rules(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, _deployment("s1"))
    wait_for(lambda: apps.read_namespaced_deployment("s1", NS).status.ready_replicas == 1)
    # A write to the main resource keeps .status.
    apps.patch_namespaced_deployment("s1", NS, {"status": {"readyReplicas": 7}, "spec": {"paused": True}})
    d = apps.read_namespaced_deployment("s1", NS)
    assert d.status.ready_replicas == 1 and d.spec.paused is True
    # A write to /status changes only .status.
    gen = d.metadata.generation
    apps.patch_namespaced_deployment_status("s1", NS, {"status": {"collisionCount": 4}, "spec": {"replicas": 9}})
    d = apps.read_namespaced_deployment("s1", NS)
    assert d.status.collision_count == 4 and d.spec.replicas == 1 and d.metadata.generation == gen


def test_finalizers_and_deletion_timestamp(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, _cm("f1", finalizers=["example.com/keep"]))
    core.delete_namespaced_config_map("f1", NS)
    cm = core.read_namespaced_config_map("f1", NS)
    assert cm.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as forbidden:
        core.patch_namespaced_config_map("f1", NS, {"metadata": {"finalizers": ["example.com/keep", "another"]}})
    assert forbidden.value.status == 422
    core.patch_namespaced_config_map(
        "f1", NS, [{"op": "remove", "path": "/metadata/finalizers"}], _content_type="application/json-patch+json"
    )
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("f1", NS)
    assert gone.value.status == 404


def test_namespace_deletion_deletes_its_content(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", _cm("inside"))
    core.delete_namespace("doomed")
    wait_for(lambda: "doomed" not in [n.metadata.name for n in core.list_namespace().items], what="namespace gone")
    assert core.list_namespaced_config_map("doomed").items == []


def test_garbage_collection_background_orphan_foreground(core: client.CoreV1Api) -> None:
    def owned_by(owner: Any, name: str) -> None:
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
        core.create_namespaced_config_map(NS, _cm(name, ownerReferences=[ref]))

    def exists(name: str) -> bool:
        return name in [c.metadata.name for c in core.list_namespaced_config_map(NS).items]

    owner = core.create_namespaced_config_map(NS, _cm("owner"))
    owned_by(owner, "dep1")
    core.delete_namespaced_config_map("owner", NS)  # Background
    wait_for(lambda: not exists("dep1"), what="background garbage collection")

    owner = core.create_namespaced_config_map(NS, _cm("owner2"))
    owned_by(owner, "dep2")
    core.delete_namespaced_config_map("owner2", NS, propagation_policy="Orphan")
    wait_for(lambda: not exists("owner2"), what="orphaning owner gone")
    assert not core.read_namespaced_config_map("dep2", NS).metadata.owner_references

    owner = core.create_namespaced_config_map(NS, _cm("owner3"))
    owned_by(owner, "dep3")
    core.delete_namespaced_config_map("owner3", NS, propagation_policy="Foreground")
    wait_for(lambda: not exists("owner3") and not exists("dep3"), what="foreground deletion")


def test_scale_and_eviction_subresources(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment(NS, _deployment("sc"))
    scale = apps.read_namespaced_deployment_scale("sc", NS)
    assert scale.kind == "Scale" and scale.spec.replicas == 1 and scale.status.selector == "app=sc"
    apps.patch_namespaced_deployment_scale("sc", NS, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("sc", NS).spec.replicas == 4
    core.create_namespaced_pod(NS, {"metadata": {"name": "ev"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    core.create_namespaced_pod_eviction("ev", NS, {"metadata": {"name": "ev", "namespace": NS}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("ev", NS)
    assert gone.value.status == 404


def test_fault_injection(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    kubesim.add_fault(verb="list", resource="configmaps", status=500, count=1)
    with pytest.raises(ApiException) as first:
        core.list_namespaced_config_map(NS)
    assert first.value.status == 500
    core.list_namespaced_config_map(NS)  # count exhausted
    kubesim.add_fault(verb="create", resource="configmaps", status=429, count=1)
    with pytest.raises(ApiException) as throttled:
        core.create_namespaced_config_map(NS, _cm("t1"))
    assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "1"
    kubesim.add_fault(verb="get", resource="configmaps", name="t2", status=409)
    core.create_namespaced_config_map(NS, _cm("t2"))
    for _ in range(2):
        with pytest.raises(ApiException) as conflict:
            core.read_namespaced_config_map("t2", NS)
        assert conflict.value.status == 409
    kubesim.clear_faults()
    core.read_namespaced_config_map("t2", NS)
    # The admin endpoint: drop the connection without an answer.
    req = urllib.request.Request(
        f"{kubesim.url}/kubesim/faults",
        method="POST",
        data=json.dumps({"verb": "get", "resource": "configmaps", "action": "drop", "count": 1}).encode(),
    )
    assert urllib.request.urlopen(req).status == 201
    url = urlparse(kubesim.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    conn.request("GET", "/api/v1/namespaces/default/configmaps/t2")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    core.read_namespaced_config_map("t2", NS)
    bad = urllib.request.Request(
        f"{kubesim.url}/kubesim/faults", method="POST", data=json.dumps({"verb": "get", "status": 418}).encode()
    )
    with pytest.raises(urllib.request.HTTPError) as refused:
        urllib.request.urlopen(bad)
    assert refused.value.code == 400


def test_delete_collection_by_label(core: client.CoreV1Api) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(NS, _cm(name, {"team": team}))
    core.delete_collection_namespaced_config_map(NS, label_selector="team=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["c"]


def test_graceful_pod_deletion() -> None:
    pod = {
        "metadata": {"name": "g"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 20, "containers": [{"name": "c", "image": "x"}]},
    }
    # Without a kubelet (no status writer), a scheduled pod stays Terminating: the kubelet must confirm.
    with KubeSim(Config(workload_status=False)) as sim:
        core = client.CoreV1Api(kube_client(sim))
        core.create_namespaced_pod(NS, pod)
        deleted = core.delete_namespaced_pod("g", NS)
        assert deleted.metadata.deletion_timestamp is not None and deleted.metadata.deletion_grace_period_seconds == 20
        assert core.read_namespaced_pod("g", NS).metadata.deletion_timestamp is not None
        core.delete_namespaced_pod("g", NS, grace_period_seconds=0)  # what the kubelet sends
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_pod("g", NS)
        assert gone.value.status == 404
    # With it, the pod goes soon after: watchers see it Terminating, then DELETED.
    with KubeSim() as sim:
        core = client.CoreV1Api(kube_client(sim))
        core.create_namespaced_pod(NS, pod)
        rv = core.list_namespaced_pod(NS).metadata.resource_version
        core.delete_namespaced_pod("g", NS)
        seen = []
        for event in watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=30):
            seen.append((event["type"], event["object"].metadata.deletion_timestamp is not None))
            if event["type"] == "DELETED":
                break
        assert seen[-2:] == [("MODIFIED", True), ("DELETED", True)]
