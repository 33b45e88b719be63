"""The ClusterPolicy CustomResourceDefinition, generated from `gpu_operator.policy`.

`python -m gpu_operator.crd [PATH]` (`make crds`) writes `crds/nvidia.com_clusterpolicies.yaml`. The schema is the
models' JSON schema made structural: references inlined, optional values unwrapped, `Literal`s as enums, non-None
pydantic defaults as CRD defaults, open models as `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from gpu_operator import __version__, policy

CRD_NAME = f"{policy.PLURAL}.{policy.GROUP}"
VERSION_ANNOTATION = "nvidia.com/gpu-operator.version"
HEADER = "# Generated from gpu_operator.policy by `make crds`; do not edit.\n"

_OPEN_MODELS = {
    name
    for name, model in vars(policy).items()
    if isinstance(model, type) and issubclass(model, policy._Open) and model is not policy._Open
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        target = dict(defs[name])
        target["__model__"] = name
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return target
    return node


def _structural(node: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """A JSON-schema node of pydantic's output turned into a structural OpenAPI v3 schema node."""
    node = _resolve(node, defs)
    assert isinstance(node, dict)
    description = node.get("description")
    default = node.get("default")
    any_of = node.get("anyOf")
    out: dict[str, Any]
    if any_of is not None:
        options = [_resolve(o, defs) for o in any_of if o.get("type") != "null"]
        types = sorted({o.get("type") for o in options})
        if len(options) == 1:
            merged = dict(options[0])
            for key in ("description", "default"):
                if key in node:
                    merged[key] = node[key]
            return _structural(merged, defs)
        if types == ["integer", "string"]:
            out = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
        else:
            raise ValueError(f"cannot express anyOf {any_of} in a structural schema")
    elif "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        out = {"type": "string", "enum": list(values)}
    elif node.get("type") == "object" or "properties" in node:
        out = {"type": "object"}
        props = node.get("properties", {})
        if props:
            out["properties"] = {key: _structural(value, defs) for key, value in props.items()}
        if node.get("required"):
            out["required"] = list(node["required"])
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            out["additionalProperties"] = _structural(additional, defs)
        if node.get("__model__") in _OPEN_MODELS:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif node.get("type") == "array":
        out = {"type": "array", "items": _structural(node["items"], defs)}
    else:
        out = {"type": node["type"]}
        if node["type"] == "integer":
            out["format"] = "int64"
        for key in ("pattern", "format", "minLength"):
            if key in node:
                out[key] = node[key]
    if description:
        out["description"] = description
    if default is not None and default != {} and "default" in node:
        out["default"] = default
    return out


def openapi_schema() -> dict[str, Any]:
    spec = policy.ClusterPolicySpec.model_json_schema(by_alias=True, mode="validation")
    status = policy.ClusterPolicyStatus.model_json_schema(by_alias=True, mode="validation")
    spec_defs = spec.pop("$defs", {})
    status_defs = status.pop("$defs", {})
    spec["__model__"] = "ClusterPolicySpec"
    return {
        "type": "object",
        "description": "ClusterPolicy is the Schema for the clusterpolicies API.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "spec": _structural(spec, spec_defs),
            "status": _structural(status, status_defs),
        },
    }


def crd_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "annotations": {VERSION_ANNOTATION: __version__}},
        "spec": {
            "group": policy.GROUP,
            "names": {
                "kind": policy.KIND,
                "listKind": f"{policy.KIND}List",
                "plural": policy.PLURAL,
                "singular": policy.SINGULAR,
            },
            "scope": "Cluster",
            "versions": [
                {
                    "name": policy.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Status", "type": "string", "jsonPath": ".status.state"},
                        {"name": "Strategy", "type": "string", "jsonPath": ".spec.mig.strategy"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    return HEADER + yaml.safe_dump(crd_manifest(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = crd_yaml()
    if not args or args[0] == "-":
        sys.stdout.write(text)
    else:
        Path(args[0]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
