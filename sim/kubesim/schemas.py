"""Unknown-field detection for built-in kinds, from the Kubernetes JSON schemas that `kubernetes-validate` ships.

The real server's `fieldValidation=Strict` is a strict decoding: any field its Go types do not have is reported as
`unknown field "spec.template.spec.containers[0].imagePullPolic"`. kubesim has no Go types, so it walks the published
JSON schema of the kind instead. The schema files are data from the `kubernetes-validate` package (a dev dependency);
without it, only top-level and metadata fields are checked (see `resources.TOP_LEVEL_FIELDS`).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from typing import Any

log = logging.getLogger("kubesim.schemas")

KUBE_VERSION = "1.35.0"
Schema = dict[str, Any]


@lru_cache(maxsize=1)
def _schema_dir() -> Any:
    try:
        root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    except ModuleNotFoundError:
        return None
    candidate = root.joinpath(f"v{KUBE_VERSION}-local-strict")
    return candidate if candidate.is_dir() else None


@lru_cache(maxsize=1)
def _definitions() -> dict[str, Schema]:
    directory = _schema_dir()
    if directory is None:
        return {}
    data = json.loads(directory.joinpath("_definitions.json").read_text())
    defs: dict[str, Schema] = data.get("$defs") or data.get("definitions") or {}
    return defs


@lru_cache(maxsize=128)
def kind_schema(group: str, version: str, kind: str) -> Schema | None:
    """The strict JSON schema of a built-in kind, or None when unknown or the schemas are not installed."""
    directory = _schema_dir()
    if directory is None:
        return None
    short = group.split(".")[0]
    name = f"{kind.lower()}-{short}-{version}.json" if group else f"{kind.lower()}-{version}.json"
    path = directory.joinpath(name)
    if not path.is_file():
        return None
    schema: Schema = json.loads(path.read_text())
    return schema


def available() -> bool:
    return _schema_dir() is not None


def _resolve(schema: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = _definitions().get(name, {})
        seen += 1
    return schema


def unknown_fields(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Paths of fields in `value` that the schema does not declare (where it forbids additional properties)."""
    schema = _resolve(schema)
    found: list[str] = []
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        if not props and additional is None:
            return found
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if key in props:
                found += unknown_fields(item, props[key], child)
            elif isinstance(additional, dict):
                found += unknown_fields(item, additional, child)
            elif additional is False:
                found.append(child)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                found += unknown_fields(item, items, f"{path}[{i}]")
    return found
