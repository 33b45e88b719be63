"""Discovery documents and minimal OpenAPI v3, built from the served resource types. Pure."""

from __future__ import annotations

from typing import Any

from kubesim.resources import SUBRESOURCE_KINDS, SUBRESOURCE_VERBS, ResourceType

VERSION_INFO = {
    "major": "1",
    "minor": "35",
    "emulationMajor": "1",
    "emulationMinor": "35",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "34",
    "gitVersion": "v1.35.2-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(group_versions: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in group_versions.items() if g],
    }


def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(group: str, version: str, types: list[ResourceType]) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rt in sorted(types, key=lambda r: r.plural):
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get",))),
            }
            sub_kind = SUBRESOURCE_KINDS.get(sub)
            if sub_kind is not None:
                sub_entry["group"], sub_entry["version"], sub_entry["kind"] = sub_kind
            resources.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_root(group_versions: dict[str, list[str]]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for group, versions in group_versions.items():
        for version in versions:
            path = gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}"}
    return {"paths": paths}


_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}, "uniqueItems": True},
]


def openapi_document(group: str, version: str, types: list[ResourceType]) -> dict[str, Any]:
    """One group-version's document: a PATCH operation per kind, with its GVK and the fieldValidation parameter."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    prefix = f"/{gv_path(group, version)}"
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        item = (
            f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{prefix}/{rt.plural}/{{name}}"
        )
        collection = item.rsplit("/", 1)[0]
        op_id = f"{rt.kind}{version}"
        paths[item] = {
            "get": {
                "operationId": f"read{op_id}",
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk,
            },
            "put": {
                "operationId": f"replace{op_id}",
                "x-kubernetes-action": "put",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS,
            },
            "patch": {
                "operationId": f"patch{op_id}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [*_PARAMS, {"name": "force", "in": "query", "schema": {"type": "boolean"}}],
            },
            "delete": {
                "operationId": f"delete{op_id}",
                "x-kubernetes-action": "delete",
                "x-kubernetes-group-version-kind": gvk,
            },
        }
        paths[collection] = {
            "post": {
                "operationId": f"create{op_id}",
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS,
            },
            "get": {
                "operationId": f"list{op_id}",
                "x-kubernetes-action": "list",
                "x-kubernetes-group-version-kind": gvk,
            },
        }
        if rt.schema is not None:
            name = ".".join(reversed(rt.group.split("."))) + f".{version}.{rt.kind}"
            schema = dict(rt.schema)
            schema["x-kubernetes-group-version-kind"] = [gvk]
            schemas[name] = schema
    doc: dict[str, Any] = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.2-kubesim"},
        "paths": paths,
    }
    if schemas:
        doc["components"] = {"schemas": schemas}
    return doc


AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> str | None:
    """The aggregated-discovery version ("v2") if the Accept header prefers it, else None."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return "v2"
            continue
        if part.strip().startswith("application/json") and not params:
            return None
    return None


def aggregated_discovery(group_versions: dict[str, list[str]], types: list[ResourceType], core: bool) -> dict[str, Any]:
    """An `apidiscovery.k8s.io/v2 APIGroupDiscoveryList`: the core group for `/api`, every other group for `/apis`."""
    items: list[dict[str, Any]] = []
    for group, versions in group_versions.items():
        if (group == "") != core:
            continue
        version_entries = []
        for version in versions:
            resources = []
            for rt in sorted((t for t in types if t.group == group and t.version == version), key=lambda r: r.plural):
                entry: dict[str, Any] = {
                    "resource": rt.plural,
                    "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                    "scope": "Namespaced" if rt.namespaced else "Cluster",
                    "singularResource": rt.singular,
                    "verbs": list(rt.verbs),
                }
                if rt.short_names:
                    entry["shortNames"] = list(rt.short_names)
                if rt.categories:
                    entry["categories"] = list(rt.categories)
                subs = []
                for sub in rt.subresources:
                    sub_kind = SUBRESOURCE_KINDS.get(sub)
                    group_, version_, kind_ = sub_kind if sub_kind else (rt.group, rt.version, rt.kind)
                    subs.append(
                        {
                            "subresource": sub,
                            "responseKind": {"group": group_, "version": version_, "kind": kind_},
                            "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get",))),
                        }
                    )
                if subs:
                    entry["subresources"] = subs
                resources.append(entry)
            version_entries.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_entries})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
