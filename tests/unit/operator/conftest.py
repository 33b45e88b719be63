"""Shared helpers of the operator's unit tests: the CRD's schema as JSON Schema, and Kubernetes schema validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from gpu_operator.crd import crd_manifest

KUBE_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0")


def _to_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out["properties"] = {k: _to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _to_json_schema(value)
        elif key == "anyOf":
            out["anyOf"] = [_to_json_schema(v) for v in value]
        elif key.startswith("x-kubernetes") or key in ("format",):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="session")
def policy_schema() -> dict[str, Any]:
    """The CRD's openAPIV3Schema as a JSON Schema; closed objects reject unknown keys (as pruning would drop them)."""
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    converted = _to_json_schema(schema)
    converted["properties"]["metadata"] = {"type": "object"}
    return converted


@pytest.fixture(scope="session")
def check_policy(policy_schema: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    validator = jsonschema.Draft7Validator(policy_schema)

    def check(doc: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            raise jsonschema.ValidationError("; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors))

    return check


def _validate_kube(doc: dict[str, Any]) -> None:
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.fixture(scope="session")
def kube_validate() -> Callable[[dict[str, Any]], None]:
    """Strict schema validation of a built-in object for every Kubernetes version from 1.30 to 1.35."""
    return _validate_kube
