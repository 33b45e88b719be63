"""Discovery documents and OpenAPI v3, as the real clients need them (kube-clients-facts §1.2, §1.3)."""

from __future__ import annotations

from kubesim import discovery
from kubesim.resources import BUILTIN


def _types(group: str, version: str) -> list:  # type: ignore[type-arg]
    return [t for t in BUILTIN if t.group == group and t.version == version]


def test_core_resource_list() -> None:
    doc = discovery.api_resource_list("", "v1", _types("", "v1"))
    assert doc["groupVersion"] == "v1"
    resources = {r["name"]: r for r in doc["resources"]}
    assert resources["pods"]["shortNames"] == ["po"] and resources["pods"]["namespaced"] is True
    assert resources["nodes"]["namespaced"] is False
    eviction = resources["pods/eviction"]
    assert (eviction["group"], eviction["version"], eviction["kind"], eviction["verbs"]) == (
        "policy",
        "v1",
        "Eviction",
        ["create"],
    )
    for name, entry in resources.items():
        if "/" in name:
            assert "shortNames" not in entry, name


def test_scale_subresource_kind() -> None:
    resources = {r["name"]: r for r in discovery.api_resource_list("apps", "v1", _types("apps", "v1"))["resources"]}
    scale = resources["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def test_openapi_has_a_patch_with_field_validation_for_every_kind() -> None:
    groups: dict[str, list[str]] = {}
    for t in BUILTIN:
        groups.setdefault(t.group, [t.version])
    root = discovery.openapi_root(groups)
    assert root["paths"]["api/v1"] == {"serverRelativeURL": "/openapi/v3/api/v1"}
    for group, versions in groups.items():
        types = _types(group, versions[0])
        doc = discovery.openapi_document(group, versions[0], types)
        kinds = set()
        for ops in doc["paths"].values():
            patch = ops.get("patch")
            if patch:
                assert {
                    "name": "fieldValidation",
                    "in": "query",
                    "schema": {"type": "string"},
                    "uniqueItems": True,
                } in patch["parameters"]
                kinds.add(patch["x-kubernetes-group-version-kind"]["kind"])
        assert kinds == {t.kind for t in types}


def test_aggregated_discovery() -> None:
    groups = {"": ["v1"], "apps": ["v1"]}
    core = discovery.aggregated_discovery(groups, list(BUILTIN), core=True)
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    apps = discovery.aggregated_discovery(groups, list(BUILTIN), core=False)
    [item] = apps["items"]
    deployments = next(r for r in item["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced" and deployments["shortNames"] == ["deploy"]
    assert {s["subresource"] for s in deployments["subresources"]} == {"status", "scale"}
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )
    assert discovery.wants_aggregated(accept) == "v2"
    assert discovery.wants_aggregated("application/json, */*") is None
