"""CustomResourceDefinitions: served at once, validated with field paths, defaulted, pruned, status subresource."""

from __future__ import annotations

import copy
import json
import threading
import urllib.request
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubesim.server import KubeSim
from kubesim.testing import Tools, kube_client, wait_for

GROUP = "nvidia.example.com"

# Shaped like the GPU operator's ClusterPolicy: enums, defaults, nested objects, a preserved free-form field.
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"clusterpolicies.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Cluster",
        "names": {
            "kind": "ClusterPolicy",
            "listKind": "ClusterPolicyList",
            "plural": "clusterpolicies",
            "singular": "clusterpolicy",
            "shortNames": ["cp"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Status", "type": "string", "jsonPath": ".status.state"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["migManager"],
                                "properties": {
                                    "migManager": {
                                        "type": "object",
                                        "properties": {
                                            "enabled": {"type": "boolean", "default": True},
                                            "config": {
                                                "type": "object",
                                                "properties": {
                                                    "name": {"type": "string", "default": "default-mig-parted-config"},
                                                    "default": {
                                                        "type": "string",
                                                        "enum": ["all-disabled", ""],
                                                        "default": "all-disabled",
                                                    },
                                                },
                                            },
                                        },
                                    },
                                    "mig": {
                                        "type": "object",
                                        "properties": {
                                            "strategy": {
                                                "type": "string",
                                                "enum": ["single", "mixed"],
                                                "default": "single",
                                            },
                                        },
                                    },
                                    "replicas": {"type": "integer", "minimum": 1},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"state": {"type": "string", "enum": ["ready", "notReady"]}},
                            },
                        },
                    }
                },
            },
            {
                "name": "v1beta1",
                "served": True,
                "storage": False,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            },
        ],
    },
}


def _policy(spec: dict[str, Any], name: str = "cluster-policy") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterPolicy", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def custom(kubesim: KubeSim) -> client.CustomObjectsApi:
    api = kube_client(kubesim)
    client.ApiextensionsV1Api(api).create_custom_resource_definition(copy.deepcopy(CRD))
    return client.CustomObjectsApi(api)


def _invalid(exc: ApiException) -> tuple[str, list[tuple[str, str]]]:
    body = json.loads(exc.body)
    assert exc.status == 422 and body["reason"] == "Invalid"
    return body["message"], [(c["field"], c["reason"]) for c in body["details"]["causes"]]


def test_crd_is_established_and_discoverable_at_once(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    crd = client.ApiextensionsV1Api(kube_client(kubesim)).read_custom_resource_definition(f"clusterpolicies.{GROUP}")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd.status.accepted_names.kind == "ClusterPolicy" and crd.status.stored_versions == ["v1"]
    with urllib.request.urlopen(f"{kubesim.url}/apis/{GROUP}/v1") as resp:
        resources = {r["name"]: r for r in json.loads(resp.read())["resources"]}
    assert (
        resources["clusterpolicies"]["kind"] == "ClusterPolicy" and resources["clusterpolicies"]["namespaced"] is False
    )
    assert "clusterpolicies/status" in resources
    with urllib.request.urlopen(f"{kubesim.url}/openapi/v3") as resp:
        assert f"apis/{GROUP}/v1" in json.loads(resp.read())["paths"]
    with urllib.request.urlopen(f"{kubesim.url}/apis") as resp:
        groups = {g["name"]: g for g in json.loads(resp.read())["groups"]}
    assert groups[GROUP]["preferredVersion"]["version"] == "v1"


def test_defaults_are_applied_and_unknown_fields_pruned(custom: client.CustomObjectsApi) -> None:
    created = custom.create_cluster_custom_object(
        GROUP,
        "v1",
        "clusterpolicies",
        _policy({"migManager": {"config": {}}, "bogus": 1, "extra": {"anything": {"goes": True}}}),
    )
    assert created["spec"] == {
        "migManager": {"enabled": True, "config": {"name": "default-mig-parted-config", "default": "all-disabled"}},
        "extra": {"anything": {"goes": True}},
    }
    assert "bogus" not in custom.get_cluster_custom_object(GROUP, "v1", "clusterpolicies", "cluster-policy")["spec"]


def test_bad_enum_and_wrong_type_are_422_with_field_paths(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as exc:
        custom.create_cluster_custom_object(
            GROUP,
            "v1",
            "clusterpolicies",
            _policy({"migManager": {"enabled": "yes"}, "mig": {"strategy": "bogus"}, "replicas": 0}),
        )
    message, causes = _invalid(exc.value)
    assert sorted(causes) == [
        ("spec.mig.strategy", "FieldValueNotSupported"),
        ("spec.migManager.enabled", "FieldValueInvalid"),
        ("spec.replicas", "FieldValueInvalid"),
    ]
    assert message.startswith(f'ClusterPolicy.{GROUP} "cluster-policy" is invalid: [')
    assert 'spec.mig.strategy: Unsupported value: "bogus": supported values: "single", "mixed"' in message
    assert (
        'spec.migManager.enabled: Invalid value: "string": spec.migManager.enabled in body must be of type '
        'boolean: "string"' in message
    )
    with pytest.raises(ApiException) as missing:
        custom.create_cluster_custom_object(GROUP, "v1", "clusterpolicies", _policy({}))
    assert _invalid(missing.value)[1] == [("spec.migManager", "FieldValueRequired")]


def test_status_subresource_is_honoured(custom: client.CustomObjectsApi) -> None:
    custom.create_cluster_custom_object(
        GROUP, "v1", "clusterpolicies", _policy({"migManager": {}}) | {"status": {"state": "ready"}}
    )
    obj = custom.get_cluster_custom_object(GROUP, "v1", "clusterpolicies", "cluster-policy")
    assert "status" not in obj  # dropped on create
    custom.patch_cluster_custom_object_status(
        GROUP, "v1", "clusterpolicies", "cluster-policy", {"status": {"state": "notReady"}, "spec": {"replicas": 5}}
    )
    obj = custom.get_cluster_custom_object(GROUP, "v1", "clusterpolicies", "cluster-policy")
    assert obj["status"] == {"state": "notReady"} and "replicas" not in obj["spec"]
    generation = obj["metadata"]["generation"]
    custom.patch_cluster_custom_object(
        GROUP, "v1", "clusterpolicies", "cluster-policy", {"spec": {"replicas": 2}, "status": {"state": "ready"}}
    )
    obj = custom.get_cluster_custom_object(GROUP, "v1", "clusterpolicies", "cluster-policy")
    assert obj["spec"]["replicas"] == 2 and obj["status"] == {"state": "notReady"}
    assert obj["metadata"]["generation"] == generation + 1
    with pytest.raises(ApiException) as bad:
        custom.patch_cluster_custom_object_status(
            GROUP, "v1", "clusterpolicies", "cluster-policy", {"status": {"state": "sideways"}}
        )
    assert _invalid(bad.value)[1] == [("status.state", "FieldValueNotSupported")]


def test_every_served_version_serves_the_same_objects(custom: client.CustomObjectsApi) -> None:
    custom.create_cluster_custom_object(GROUP, "v1", "clusterpolicies", _policy({"migManager": {}}))
    beta = custom.get_cluster_custom_object(GROUP, "v1beta1", "clusterpolicies", "cluster-policy")
    assert beta["apiVersion"] == f"{GROUP}/v1beta1" and beta["spec"]["migManager"]["enabled"] is True


def test_kubectl_with_custom_resources(kubesim_tools: Tools, custom: client.CustomObjectsApi) -> None:
    k = kubesim_tools.kubectl
    doc = yaml.safe_dump(_policy({"migManager": {"config": {"name": "custom"}}}))
    k("apply", "-f", "-", stdin=doc)
    assert k("get", "cp", "-o", "name").stdout.split() == [f"clusterpolicy.{GROUP}/cluster-policy"]
    custom.patch_cluster_custom_object_status(
        GROUP, "v1", "clusterpolicies", "cluster-policy", {"status": {"state": "ready"}}
    )
    header, row = k("get", "cp").stdout.splitlines()  # the CRD's additionalPrinterColumns
    assert header.split() == ["NAME", "STATUS", "AGE"] and row.split()[:2] == ["cluster-policy", "ready"]
    k("apply", "-f", "-", stdin=doc.replace("custom", "changed"))  # client-side apply update: merge patch for CRs
    obj = json.loads(k("get", "cp", "cluster-policy", "-o", "json").stdout)
    assert obj["spec"]["migManager"]["config"]["name"] == "changed"
    smp = k("patch", "cp", "cluster-policy", "--type=strategic", "-p", '{"spec":{"replicas":3}}', check=False)
    assert smp.returncode != 0 and "application/strategic-merge-patch+json is not supported" in smp.stderr
    strict = k("apply", "-f", "-", stdin=doc.replace("migManager:", "unknownField: 1\n  migManager:"), check=False)
    assert strict.returncode != 0 and 'unknown field "spec.unknownField"' in strict.stderr
    bad = k("apply", "-f", "-", stdin=doc.replace("migManager:", "replicas: many\n  migManager:"), check=False)
    assert bad.returncode != 0 and "spec.replicas" in bad.stderr and "must be of type integer" in bad.stderr


def test_deleting_the_crd_removes_its_resources(kubesim: KubeSim, custom: client.CustomObjectsApi) -> None:
    custom.create_cluster_custom_object(GROUP, "v1", "clusterpolicies", _policy({"migManager": {}}))
    events: list[str] = []
    done = threading.Event()

    def follow() -> None:
        stream = watch.Watch().stream(
            custom.list_cluster_custom_object, GROUP, "v1", "clusterpolicies", timeout_seconds=300
        )
        events.extend(e["type"] for e in stream)  # ends when the server closes the stream
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    wait_for(lambda: events == ["ADDED"], what="the initial event")
    client.ApiextensionsV1Api(kube_client(kubesim)).delete_custom_resource_definition(f"clusterpolicies.{GROUP}")
    assert done.wait(30) and events == ["ADDED", "DELETED"]
    with pytest.raises(urllib.request.HTTPError) as gone:
        urllib.request.urlopen(f"{kubesim.url}/apis/{GROUP}/v1")
    assert gone.value.code == 404
    # Re-creating it serves an empty collection: the old objects went with the CRD.
    client.ApiextensionsV1Api(kube_client(kubesim)).create_custom_resource_definition(copy.deepcopy(CRD))
    assert custom.list_cluster_custom_object(GROUP, "v1", "clusterpolicies")["items"] == []


def test_invalid_crd_is_rejected(kubesim: KubeSim) -> None:
    bad = copy.deepcopy(CRD)
    bad["metadata"]["name"] = "wrong.name"
    with pytest.raises(ApiException) as exc:
        client.ApiextensionsV1Api(kube_client(kubesim)).create_custom_resource_definition(bad)
    assert _invalid(exc.value)[1] == [("metadata.name", "FieldValueInvalid")]


def test_custom_scale_subresource_follows_the_crd_paths(kubesim: KubeSim) -> None:
    crd = copy.deepcopy(CRD)
    crd["spec"]["scope"] = "Namespaced"
    crd["spec"]["versions"][0]["subresources"]["scale"] = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"].update(
        {"replicas": {"type": "integer"}, "selector": {"type": "string"}}
    )
    api = kube_client(kubesim)
    client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(api)
    body = _policy({"migManager": {}, "replicas": 2})
    custom.create_namespaced_custom_object(GROUP, "v1", "default", "clusterpolicies", body)
    custom.patch_namespaced_custom_object_status(
        GROUP, "v1", "default", "clusterpolicies", "cluster-policy", {"status": {"replicas": 2, "selector": "app=gpu"}}
    )
    scale = custom.get_namespaced_custom_object_scale(GROUP, "v1", "default", "clusterpolicies", "cluster-policy")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"] == {"replicas": 2, "selector": "app=gpu"}
    custom.patch_namespaced_custom_object_scale(
        GROUP, "v1", "default", "clusterpolicies", "cluster-policy", {"spec": {"replicas": 5}}
    )
    obj = custom.get_namespaced_custom_object(GROUP, "v1", "default", "clusterpolicies", "cluster-policy")
    assert obj["spec"]["replicas"] == 5
