"""Conformance: the real kubectl (1.35.2, from .tools/bin) against kubesim, one behaviour per test."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubesim.server import Config, KubeSim
from kubesim.testing import Tools, kube_client, wait_for

CM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  a: "1"
"""

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: example.com/web:1
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
        - name: sidecar
          image: example.com/sidecar:1
"""


def _json(tools: Tools, *args: str) -> Any:
    return json.loads(tools.kubectl(*args, "-o", "json").stdout)


def test_api_resources_lists_every_builtin(kubesim_tools: Tools) -> None:
    out = kubesim_tools.kubectl("api-resources", "-o", "name").stdout.split()
    for name in (
        "pods",
        "nodes",
        "namespaces",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "services",
        "events",
        "deployments.apps",
        "daemonsets.apps",
        "replicasets.apps",
        "jobs.batch",
        "leases.coordination.k8s.io",
        "roles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
        "events.events.k8s.io",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
    ):
        assert name in out
    # Short names resolve, and subresources do not steal them (no "could also match" warning).
    result = kubesim_tools.kubectl("get", "deploy")
    assert "could also match" not in result.stderr


def test_create_get_replace_delete(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    assert "created" in k("create", "-f", "-", stdin=CM).stdout
    dup = k("create", "-f", "-", stdin=CM, check=False)
    assert dup.returncode != 0 and "AlreadyExists" in dup.stderr
    assert 'configmaps "web-config" already exists' in dup.stderr
    obj = _json(kubesim_tools, "get", "cm", "web-config")
    assert obj["metadata"]["uid"] and obj["metadata"]["creationTimestamp"] and obj["metadata"]["resourceVersion"]
    obj["data"]["a"] = "2"
    assert "replaced" in k("replace", "-f", "-", stdin=json.dumps(obj)).stdout
    # A replace carrying the old resourceVersion is a stale write: 409 Conflict.
    stale = k("replace", "-f", "-", stdin=json.dumps(obj), check=False)
    assert stale.returncode != 0 and "Conflict" in stale.stderr and "the object has been modified" in stale.stderr
    assert _json(kubesim_tools, "get", "cm", "web-config")["data"] == {"a": "2"}
    assert "deleted" in k("delete", "cm", "web-config").stdout
    missing = k("get", "cm", "web-config", check=False)
    assert missing.returncode != 0 and 'configmaps "web-config" not found' in missing.stderr


def test_imperative_create_uses_protobuf_bodies(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    k("create", "namespace", "team-a")
    k("create", "configmap", "c1", "-n", "team-a", "--from-literal=k=v")
    k("create", "secret", "generic", "s1", "-n", "team-a", "--from-literal=password=hunter2")
    k("create", "serviceaccount", "robot", "-n", "team-a")
    assert _json(kubesim_tools, "get", "cm", "c1", "-n", "team-a")["data"] == {"k": "v"}
    secret = _json(kubesim_tools, "get", "secret", "s1", "-n", "team-a")
    assert secret["data"] == {"password": "aHVudGVyMg=="} and secret["type"] == "Opaque"
    assert _json(kubesim_tools, "get", "ns", "team-a")["status"]["phase"] == "Active"
    assert _json(kubesim_tools, "get", "sa", "robot", "-n", "team-a")["metadata"]["name"] == "robot"


def test_label_and_annotate(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    k("create", "-f", "-", stdin=CM)
    k("label", "cm", "web-config", "tier=front")
    k("annotate", "cm", "web-config", "note=hi")
    meta = _json(kubesim_tools, "get", "cm", "web-config")["metadata"]
    assert meta["labels"] == {"app": "web", "tier": "front"} and meta["annotations"] == {"note": "hi"}
    clash = k("label", "cm", "web-config", "tier=back", check=False)
    assert clash.returncode != 0 and "already has a value" in clash.stderr
    k("label", "cm", "web-config", "tier=back", "--overwrite")
    k("label", "cm", "web-config", "app-")
    k("annotate", "cm", "web-config", "note-")
    meta = _json(kubesim_tools, "get", "cm", "web-config")["metadata"]
    assert meta["labels"] == {"tier": "back"} and "note" not in (meta.get("annotations") or {})
    assert k("get", "cm", "-l", "tier=back", "-o", "name").stdout.split() == ["configmap/web-config"]
    assert k("get", "cm", "-l", "tier in (x,y)", "-o", "name").stdout.split() == []
    assert k("get", "cm", "-l", "!app", "-o", "name").stdout.split() == ["configmap/web-config"]


def test_patch_each_type(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    k("apply", "-f", "-", stdin=DEPLOY)
    # Strategic merge (the default): containers merge by name, env by name.
    k(
        "patch",
        "deploy",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"3"}]}]}}}}',
    )
    spec = _json(kubesim_tools, "get", "deploy", "web")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["web", "sidecar"]
    assert spec["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    # $patch: delete removes one list element by its key.
    k(
        "patch",
        "deploy",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}',
    )
    spec = _json(kubesim_tools, "get", "deploy", "web")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["web"]
    # JSON merge patch replaces lists wholesale.
    k("patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    assert _json(kubesim_tools, "get", "deploy", "web")["spec"]["replicas"] == 3
    # JSON patch, including a failing test op (422 Invalid, not 500).
    k("patch", "deploy", "web", "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    assert _json(kubesim_tools, "get", "deploy", "web")["spec"]["replicas"] == 4
    bad = k(
        "patch", "deploy", "web", "--type=json", "-p", '[{"op":"test","path":"/spec/replicas","value":9}]', check=False
    )
    assert bad.returncode != 0 and "is invalid" in bad.stderr
    assert "testing value /spec/replicas failed" in bad.stderr


def test_apply_client_side_and_server_side(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    assert "created" in k("apply", "-f", "-", stdin=CM).stdout
    assert "configured" in k("apply", "-f", "-", stdin=CM.replace('a: "1"', 'a: "2"\n  b: "3"')).stdout
    data = _json(kubesim_tools, "get", "cm", "web-config")["data"]
    assert data == {"a": "2", "b": "3"}
    # Client-side apply removes what the last applied configuration had and the new one lacks.
    k("apply", "-f", "-", stdin=CM.replace('a: "1"', 'a: "2"'))
    assert _json(kubesim_tools, "get", "cm", "web-config")["data"] == {"a": "2"}
    # Server-side apply creates, and removes fields its manager no longer applies.
    ssa = CM.replace("web-config", "ssa-config").replace('a: "1"', 'a: "1"\n  gone: "soon"')
    assert "serverside-applied" in k("apply", "--server-side", "-f", "-", stdin=ssa).stdout
    k("apply", "--server-side", "-f", "-", stdin=CM.replace("web-config", "ssa-config"))
    assert _json(kubesim_tools, "get", "cm", "ssa-config")["data"] == {"a": "1"}


def test_dry_run_server_is_never_persisted(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    assert "(server dry run)" in k("create", "-f", "-", "--dry-run=server", stdin=CM).stdout
    assert k("get", "cm", "web-config", check=False).returncode != 0
    k("create", "-f", "-", stdin=CM)
    k("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=CM.replace('a: "1"', 'a: "9"'))
    k("patch", "cm", "web-config", "--dry-run=server", "-p", '{"data":{"a":"8"}}')
    k("delete", "cm", "web-config", "--dry-run=server")
    assert _json(kubesim_tools, "get", "cm", "web-config")["data"] == {"a": "1"}


def test_strict_field_validation(kubesim_tools: Tools) -> None:
    bad = CM.replace("data:", "bogus: 1\ndata:")
    result = kubesim_tools.kubectl("create", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0 and 'unknown field "bogus"' in result.stderr
    assert kubesim_tools.kubectl("get", "cm", "web-config", check=False).returncode != 0
    # Nested typos are caught too, with the full path, as the real server's strict decoding does.
    typo = DEPLOY.replace("image: example.com/web:1", "image: example.com/web:1\n          imagePullPolic: Always")
    result = kubesim_tools.kubectl("apply", "-f", "-", stdin=typo, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolic"' in result.stderr
    kubesim_tools.kubectl("apply", "-f", "-", stdin=typo.replace("imagePullPolic:", "imagePullPolicy:"))


class _Lines:
    """Lines of a long-running process's stdout, read on a thread so the test can wait on them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 30.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output from the watching process") from None


def test_get_watch_streams_changes(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    k("create", "-f", "-", stdin=CM)
    proc = kubesim_tools.popen(
        "kubectl",
        "get",
        "cm",
        "-l",
        "app=web",
        "-w",
        "--output-watch-events",
        "-o",
        'jsonpath={.type} {.object.metadata.name} {.object.data.a}{"\\n"}',
    )
    try:
        lines = _Lines(proc)
        assert lines.next() == "ADDED web-config 1"
        k("patch", "cm", "web-config", "-p", '{"data":{"a":"2"}}')
        assert lines.next() == "MODIFIED web-config 2"
        k("label", "cm", "web-config", "app=other", "--overwrite")  # leaves the selector
        assert lines.next().startswith("DELETED web-config")
    finally:
        proc.kill()
        proc.wait()


def test_wait_for_condition_and_delete(kubesim: KubeSim, kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    k("apply", "-f", "-", stdin=DEPLOY)
    k("wait", "--for=condition=Available", "deploy/web", "--timeout=60s")
    k("wait", "--for=jsonpath={.status.readyReplicas}=2", "deploy/web", "--timeout=60s")
    k("rollout", "status", "deploy/web", "--timeout=60s")
    # A pod held by a finalizer: delete returns at once, `wait --for=delete` ends when the finalizer goes.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    k("create", "-f", "-", stdin=json.dumps(pod))
    k("wait", "--for=condition=Ready", "pod/held", "--timeout=60s")
    k("delete", "pod", "held", "--wait=false")
    assert _json(kubesim_tools, "get", "pod", "held")["metadata"]["deletionTimestamp"]
    waiter = kubesim_tools.popen("kubectl", "wait", "--for=delete", "pod/held", "--timeout=60s")
    try:
        core = client.CoreV1Api(kube_client(kubesim))
        wait_for(lambda: kubesim.watcher_count() > 0, what="kubectl wait to open its watch")
        core.patch_namespaced_pod("held", "default", {"metadata": {"finalizers": None}})
        assert waiter.wait(timeout=60) == 0
    finally:
        waiter.kill()


def test_scale_logs_and_drain(kubesim: KubeSim, kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    k("apply", "-f", "-", stdin=DEPLOY)
    assert "scaled" in k("scale", "deploy", "web", "--replicas=5").stdout
    assert _json(kubesim_tools, "get", "deploy", "web")["spec"]["replicas"] == 5
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1", "labels": {"app": "logs"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "x"}]},
    }
    k("create", "-f", "-", stdin=json.dumps(pod))
    kubesim.append_log("default", "p1", "main", "line one\nline two\nline three")
    assert k("logs", "p1").stdout.splitlines() == ["line one", "line two", "line three"]
    assert k("logs", "p1", "--tail=1").stdout.splitlines() == ["line three"]
    follower = _Lines(kubesim_tools.popen("kubectl", "logs", "-f", "p1", "--tail=1"))
    try:
        assert follower.next() == "line three"
        kubesim.append_log("default", "p1", "main", "line four")
        assert follower.next() == "line four"
    finally:
        follower.proc.kill()
        follower.proc.wait()
    bad = k("logs", "p1", "-c", "nope", check=False)
    assert bad.returncode != 0 and "not valid for pod" in bad.stderr
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    k("create", "-f", "-", stdin=json.dumps(node))
    k("drain", "n1", "--force", "--timeout=60s")  # cordons, then evicts p1 through pods/eviction
    assert _json(kubesim_tools, "get", "node", "n1")["spec"]["unschedulable"] is True
    assert k("get", "pod", "p1", check=False).returncode != 0


@pytest.mark.parametrize("selector", ["metadata.name=p2", "spec.nodeName=n2", "status.phase=Running"])
def test_field_selectors(kubesim_tools: Tools, selector: str) -> None:
    k = kubesim_tools.kubectl
    for name, node in (("p2", "n2"), ("p3", "n3")):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
        }
        k("create", "-f", "-", stdin=json.dumps(pod))
    wait_for(lambda: "Running" in k("get", "pod", "p3", "-o", "jsonpath={.status.phase}").stdout)
    names = k("get", "pods", "--field-selector", selector, "-o", "name").stdout.split()
    expected = ["pod/p2", "pod/p3"] if selector.startswith("status") else ["pod/p2"]
    assert names == expected
    unsupported = k("get", "pods", "--field-selector", "spec.bogus=x", check=False)
    assert unsupported.returncode != 0 and "field label not supported" in unsupported.stderr


def test_get_prints_the_real_columns_from_tables(kubesim_tools: Tools) -> None:
    k = kubesim_tools.kubectl
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-1", "labels": {"node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.35.2"}},
    }
    k("create", "-f", "-", stdin=json.dumps(node))
    header, row = k("get", "nodes").stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert row.split()[:3] == ["gpu-1", "Ready", "worker"] and row.split()[-1] == "v1.35.2"
    assert "INTERNAL-IP" in k("get", "nodes", "-o", "wide").stdout
    assert "node-role.kubernetes.io/worker=" in k("get", "nodes", "--show-labels").stdout
    k("apply", "-f", "-", stdin=DEPLOY)
    k("wait", "--for=condition=Available", "deploy/web", "--timeout=60s")
    header, row = k("get", "deploy").stdout.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["web", "2/2", "2", "2"]


@pytest.mark.parametrize("aggregated", [True, False])
def test_discovery_aggregated_and_legacy(tmp_path: Path, aggregated: bool) -> None:
    with KubeSim(Config(aggregated_discovery=aggregated, record_requests=True)) as sim:
        home = tmp_path / "home"
        home.mkdir()
        tools = Tools(sim, home)
        tools.kubectl("create", "-f", "-", stdin=CM)
        assert tools.kubectl("get", "cm", "-o", "name").stdout.split() == ["configmap/web-config"]
        assert "deployments.apps" in tools.kubectl("api-resources", "-o", "name").stdout.split()
        paths = [path.split("?")[0] for method, path, status in sim.requests() if method == "GET"]
        # Aggregated discovery answers /api and /apis in one go; legacy clients then fetch each group-version.
        assert ("/api/v1" in paths) is not aggregated
        assert ("/apis/apps/v1" in paths) is not aggregated
