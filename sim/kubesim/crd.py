"""CustomResourceDefinitions: resource types from a CRD, and structural-schema pruning, defaulting and validation.

Pure: the API layer calls `prepare_custom_object` on every write of a custom resource and `crd_resource_types` when a
CRD is written.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

from kubesim.errors import FieldError
from kubesim.resources import ALL_VERBS, ResourceType

Schema = dict[str, Any]


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """One `ResourceType` per served version of the CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = next((v.get("name") for v in spec.get("versions") or [] if v.get("storage")), None)
    storage = storage or (versions[0].get("name") if versions else "")
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    types: list[ResourceType] = []
    for version in versions:
        subresources = version.get("subresources") or {}
        subs: list[str] = []
        if "status" in subresources:
            subs.append("status")
        if "scale" in subresources:
            subs.append("scale")
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        selectable = tuple(str(f.get("jsonPath", "")).lstrip(".") for f in version.get("selectableFields") or [])
        types.append(
            ResourceType(
                group=group,
                version=str(version.get("name")),
                plural=str(names.get("plural", "")),
                singular=str(names.get("singular") or str(names.get("kind", "")).lower()),
                kind=str(names.get("kind", "")),
                namespaced=namespaced,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(subs),
                verbs=ALL_VERBS,
                custom=True,
                schema=schema,
                field_labels=selectable,
                storage_version=str(storage),
            )
        )
    return types


def crd_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """The status the real server converges a CRD to: names accepted and established.

    Conditions keep their `lastTransitionTime` while unchanged, so rewriting an unchanged CRD is a no-op.
    """
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    old = crd.get("status") or {}
    stored = list(old.get("storedVersions") or [])
    for name in storage:
        if name not in stored:
            stored.append(name)
    previous = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
    wanted = [
        ("NamesAccepted", "NoConflicts", "no conflicts found"),
        ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ]
    conditions = []
    for kind, reason, message in wanted:
        before = previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == "True" else None
        conditions.append(
            {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since or now}
        )
    return {"acceptedNames": names, "storedVersions": stored, "conditions": conditions}


def validate_crd(crd: dict[str, Any]) -> list[FieldError]:
    """The checks of a CRD itself that clients rely on (names, group, versions, one storage version)."""
    errs: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    if not group:
        errs.append(FieldError("spec.group", "FieldValueRequired", "Required value"))
    if not names.get("plural"):
        errs.append(FieldError("spec.names.plural", "FieldValueRequired", "Required value"))
    if not names.get("kind"):
        errs.append(FieldError("spec.names.kind", "FieldValueRequired", "Required value"))
    name = (crd.get("metadata") or {}).get("name")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        errs.append(
            FieldError(
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        errs.append(FieldError("spec.versions", "FieldValueRequired", "Required value"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errs.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: []: must have exactly one version marked as storage version",
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(
            FieldError(
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"',
            )
        )
    return errs


# ---------------------------------------------------------------- pruning


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def prune(value: Any, schema: Schema, path: str, pruned: list[str], *, root: bool = False) -> Any:
    """Drop fields the schema does not declare; collects their paths in `pruned`."""
    if isinstance(value, dict):
        keep = {"apiVersion", "kind", "metadata"} if schema.get("x-kubernetes-embedded-resource") or root else set()
        props: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, item in value.items():
            child_path = f"{path}.{key}" if path else key
            if key in keep:  # object metadata is the server's, even where a CRD declares `metadata: {type: object}`
                result[key] = item
            elif key in props:
                result[key] = prune(item, props[key], child_path, pruned)
            elif isinstance(additional, dict):
                result[key] = prune(item, additional, child_path, pruned)
            elif _preserves(schema) or additional is True:
                result[key] = item
            else:
                pruned.append(child_path)
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune(v, items, f"{path}[{i}]", pruned) for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------- defaulting


def apply_defaults(value: Any, schema: Schema) -> Any:
    if isinstance(value, dict):
        result = dict(value)
        props: dict[str, Schema] = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in result and "default" in sub:
                result[key] = copy.deepcopy(sub["default"])
            if key in result:
                result[key] = apply_defaults(result[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in list(result):
                if key not in props:
                    result[key] = apply_defaults(result[key], additional)
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [apply_defaults(v, items) for v in value]
    return value


# ---------------------------------------------------------------- validation


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return _type_name(value)
    return str(value)


def _type_ok(value: Any, want: str, schema: Schema) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    if want == "object":
        return isinstance(value, dict)
    if want == "array":
        return isinstance(value, list)
    if want == "string":
        return isinstance(value, str)
    if want == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if want == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want == "boolean":
        return isinstance(value, bool)
    return True


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def validate(value: Any, schema: Schema, path: str, errs: list[FieldError]) -> None:
    """Check `value` against a structural schema, appending `field.Error`s worded like the real server's."""
    where = path or "<root>"
    want = schema.get("type")
    if value is None and not schema.get("nullable") and want:
        errs.append(
            FieldError(
                where, "FieldValueInvalid", f'Invalid value: "null": {where} in body must be of type {want}: "null"'
            )
        )
        return
    if value is None:
        return
    if schema.get("x-kubernetes-int-or-string") and (isinstance(value, bool) or not isinstance(value, int | str)):
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f'Invalid value: "{_type_name(value)}": {where} in body must be of type integer,string: '
                f'"{_type_name(value)}"',
            )
        )
        return
    if want and not _type_ok(value, str(want), schema):
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f'Invalid value: "{_type_name(value)}": {where} in body must be of type {want}: "{_type_name(value)}"',
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_shown(v) for v in schema["enum"])
        errs.append(
            FieldError(
                where, "FieldValueNotSupported", f"Unsupported value: {_shown(value)}: supported values: {supported}"
            )
        )
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float):
        _validate_number(value, schema, where, errs)
    elif isinstance(value, str):
        _validate_string(value, schema, where, errs)
    elif isinstance(value, list):
        _validate_array(value, schema, where, path, errs)
    elif isinstance(value, dict):
        _validate_object(value, schema, where, path, errs)
    for sub in schema.get("allOf") or []:
        validate(value, sub, path, errs)
    any_of = schema.get("anyOf")
    if any_of and not any(_passes(value, sub, path) for sub in any_of):
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {where} in body must match at least one schema (anyOf)",
            )
        )
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if _passes(value, sub, path)) != 1:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {where} in body must match exactly one schema (oneOf)",
            )
        )
    not_schema = schema.get("not")
    if isinstance(not_schema, dict) and _passes(value, not_schema, path):
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {where} in body should not be valid against the schema (not)",
            )
        )


def _passes(value: Any, schema: Schema, path: str) -> bool:
    errs: list[FieldError] = []
    validate(value, schema, path, errs)
    return not errs


def _validate_number(value: float, schema: Schema, where: str, errs: list[FieldError]) -> None:
    minimum = schema.get("minimum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            errs.append(
                FieldError(
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: {_shown(value)}: {where} in body should be greater than {minimum}",
                )
            )
        elif value < minimum:
            errs.append(
                FieldError(
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: {_shown(value)}: {where} in body should be greater than or equal to {minimum}",
                )
            )
    maximum = schema.get("maximum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            errs.append(
                FieldError(
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: {_shown(value)}: {where} in body should be less than {maximum}",
                )
            )
        elif value > maximum:
            errs.append(
                FieldError(
                    where,
                    "FieldValueInvalid",
                    f"Invalid value: {_shown(value)}: {where} in body should be less than or equal to {maximum}",
                )
            )
    multiple = schema.get("multipleOf")
    if multiple and value % multiple:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {where} in body should be a multiple of {multiple}",
            )
        )


def _validate_string(value: str, schema: Schema, where: str, errs: list[FieldError]) -> None:
    if schema.get("x-kubernetes-int-or-string"):
        return
    max_length = schema.get("maxLength")
    if max_length is not None and len(value) > max_length:
        errs.append(FieldError(where, "TooLong", f"Too long: may not be more than {max_length} bytes"))
    min_length = schema.get("minLength")
    if min_length is not None and len(value) < min_length:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {where} in body should be at least {min_length} chars long",
            )
        )
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        errs.append(
            FieldError(
                where, "FieldValueInvalid", f"Invalid value: {_shown(value)}: {where} in body should match '{pattern}'"
            )
        )
    if schema.get("format") == "date-time" and not _DATE_TIME.match(value):
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {_shown(value)}: {where} in body must be of type date-time: {_shown(value)}",
            )
        )


def _validate_array(value: list[Any], schema: Schema, where: str, path: str, errs: list[FieldError]) -> None:
    max_items = schema.get("maxItems")
    if max_items is not None and len(value) > max_items:
        errs.append(FieldError(where, "TooMany", f"Too many: {len(value)}: must have at most {max_items} items"))
    min_items = schema.get("minItems")
    if min_items is not None and len(value) < min_items:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {where} in body should have at least {min_items} items",
            )
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            validate(item, items, f"{path}[{i}]", errs)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errs.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: {_shown(item)}"))
            seen.append(item)
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple[Any, ...]] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                ident = tuple(item.get(k) for k in keys)
                if ident in seen_keys:
                    shown = ", ".join(f'"{k}":{_shown(item.get(k))}' for k in keys)
                    errs.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate", f"Duplicate value: map[{shown}]"))
                seen_keys.append(ident)


def _validate_object(value: dict[str, Any], schema: Schema, where: str, path: str, errs: list[FieldError]) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(FieldError(f"{path}.{key}" if path else key, "FieldValueRequired", "Required value"))
    props: dict[str, Schema] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        child = f"{path}.{key}" if path else key
        if key in props:
            validate(item, props[key], child, errs)
        elif isinstance(additional, dict):
            validate(item, additional, child, errs)
    max_props = schema.get("maxProperties")
    if max_props is not None and len(value) > max_props:
        errs.append(FieldError(where, "TooMany", f"Too many: {len(value)}: must have at most {max_props} items"))
    min_props = schema.get("minProperties")
    if min_props is not None and len(value) < min_props:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {where} in body should have at least {min_props} properties",
            )
        )


def prepare_custom_object(obj: dict[str, Any], schema: Schema) -> tuple[dict[str, Any], list[str], list[FieldError]]:
    """Prune, default and validate a custom object: (result, pruned paths, errors).

    `apiVersion`, `kind` and `metadata` are never pruned or validated here (the API layer checks metadata).
    """
    pruned: list[str] = []
    result = prune(obj, schema, "", pruned, root=True)
    result = apply_defaults(result, schema)
    errs: list[FieldError] = []
    body = {k: v for k, v in result.items() if k not in ("apiVersion", "kind", "metadata")}
    root_schema = dict(schema)
    props = dict(root_schema.get("properties") or {})
    for meta in ("apiVersion", "kind", "metadata"):
        props.pop(meta, None)
    root_schema["properties"] = props
    root_schema["required"] = [
        r for r in root_schema.get("required") or [] if r not in ("apiVersion", "kind", "metadata")
    ]
    validate(body, root_schema, "", errs)
    return result, pruned, errs


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
