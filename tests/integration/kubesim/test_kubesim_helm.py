"""The real helm (4.1.4, from .tools/bin) drives a whole release lifecycle against kubesim, unchanged."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from kubernetes import client

from kubesim.server import KubeSim
from kubesim.testing import Tools, events_of, kube_client

CHART = str(Path(__file__).parent / "testchart")
NS = "ns1"


def _release_secrets(api: client.CoreV1Api) -> dict[str, dict[str, str]]:
    items = api.list_namespaced_secret(NS, label_selector="owner=helm").items
    return {s.metadata.name: s.metadata.labels for s in items}


def test_helm_install_upgrade_rollback_uninstall(kubesim: KubeSim, kubesim_tools: Tools) -> None:
    helm = kubesim_tools.helm
    api_client = kube_client(kubesim)
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)

    # install --wait: SSA creates everything, the CRD is served at once, release stored as a protobuf Secret.
    out = helm("install", "r1", CHART, "-n", NS, "--create-namespace", "--wait", "--timeout", "60s").stdout
    assert "STATUS: deployed" in out
    assert core.read_namespaced_config_map("r1-config", NS).data == {"message": "hello", "extra": "yes"}
    deploy = apps.read_namespaced_deployment("r1-web", NS)
    assert deploy.status.ready_replicas == 1 and deploy.status.observed_generation == deploy.metadata.generation
    assert apps.read_namespaced_daemon_set("r1-agent", NS).status.observed_generation == 1
    widget = custom.get_namespaced_custom_object("example.com", "v1", NS, "widgets", "r1-widget")
    assert widget["spec"] == {"size": 3, "color": "green"}  # the CRD's default applied
    secrets = _release_secrets(core)
    assert secrets["sh.helm.release.v1.r1.v1"]["status"] == "deployed"
    stored = core.read_namespaced_secret("sh.helm.release.v1.r1.v1", NS)
    assert stored.type == "helm.sh/release.v1"
    assert base64.b64decode(stored.data["release"])  # the protobuf body's bytes survived as data

    releases = json.loads(helm("list", "-n", NS, "-o", "json").stdout)
    assert [(r["name"], r["status"], r["revision"]) for r in releases] == [("r1", "deployed", "1")]

    # upgrade with a pre-upgrade hook Job: the Job is created, completes, and is deleted (hook-succeeded).
    out = helm("upgrade", "r1", CHART, "-n", NS, "--wait", "--timeout", "60s", "--set", "message=world,extraKey=false")
    assert "STATUS: deployed" in out.stdout
    job_events = [t for t, _ in events_of(kubesim, "batch", "jobs", "r1-preupgrade")]
    assert job_events[0] == "ADDED" and job_events[-1] == "DELETED"
    # Server-side apply removed the key the chart no longer renders.
    assert core.read_namespaced_config_map("r1-config", NS).data == {"message": "world"}
    env = apps.read_namespaced_deployment("r1-web", NS).spec.template.spec.containers[0].env
    assert [(e.name, e.value) for e in env] == [("MESSAGE", "world")]
    secrets = _release_secrets(core)
    assert secrets["sh.helm.release.v1.r1.v1"]["status"] == "superseded"
    assert secrets["sh.helm.release.v1.r1.v2"]["status"] == "deployed"

    # rollback to revision 1 creates revision 3 with the old values.
    helm("rollback", "r1", "1", "-n", NS, "--wait", "--timeout", "60s")
    assert core.read_namespaced_config_map("r1-config", NS).data == {"message": "hello", "extra": "yes"}
    history = json.loads(helm("history", "r1", "-n", NS, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "superseded"), (3, "deployed")]

    # helm test runs the test hook pod to completion.
    assert "Phase:          Succeeded" in helm("test", "r1", "-n", NS, "--timeout", "60s").stdout

    # uninstall deletes the release's objects and its Secrets (protobuf DeleteOptions bodies); the CRD stays.
    helm("uninstall", "r1", "-n", NS, "--wait", "--timeout", "60s")
    assert core.list_namespaced_config_map(NS).items == []
    assert apps.list_namespaced_deployment(NS).items == []
    assert apps.list_namespaced_daemon_set(NS).items == []
    assert _release_secrets(core) == {}
    assert custom.list_namespaced_custom_object("example.com", "v1", NS, "widgets")["items"] == []
    client.ApiextensionsV1Api(api_client).read_custom_resource_definition("widgets.example.com")
    assert json.loads(helm("list", "-A", "-o", "json").stdout) == []


def test_helm_client_side_apply_install_and_upgrade(kubesim: KubeSim, kubesim_tools: Tools) -> None:
    """`--server-side=false` creates with POST and upgrades with strategic-merge and merge patches."""
    helm = kubesim_tools.helm
    helm("install", "r2", CHART, "-n", NS, "--create-namespace", "--server-side=false", "--wait", "--timeout", "60s")
    helm(
        "upgrade",
        "r2",
        CHART,
        "-n",
        NS,
        "--server-side=false",
        "--wait",
        "--timeout",
        "60s",
        "--set",
        "message=csa,widgetSize=5",
    )
    core = client.CoreV1Api(kube_client(kubesim))
    assert core.read_namespaced_config_map("r2-config", NS).data["message"] == "csa"
    widget = client.CustomObjectsApi(kube_client(kubesim)).get_namespaced_custom_object(
        "example.com", "v1", NS, "widgets", "r2-widget"
    )
    assert widget["spec"]["size"] == 5
    # A second install of a chart whose CRD exists must skip the CRD (AlreadyExists), not fail.
    helm("install", "r3", CHART, "-n", "ns3", "--create-namespace", "--server-side=false", "--timeout", "60s")
