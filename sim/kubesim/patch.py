"""Patch types the API server accepts: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge, and apply.

Every function is pure: it returns a new document and never mutates its inputs.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesim.errors import KubeSimError


class PatchError(KubeSimError):
    """A patch that cannot be applied; the API answers 422 (a failed `test` included)."""


# ---------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- RFC 6902


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_add: bool = False) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path!r}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise PatchError(f"array index {idx} out of range in {path!r}")
    return idx


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"path {path!r} not found: missing key {token!r}")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, path)]
        else:
            raise PatchError(f"path {path!r} not found")
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} not found")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path)]
    raise PatchError(f"path {path!r} not found")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise PatchError(f"cannot add at {path!r}: parent is not a container")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path))
    raise PatchError(f"path {path!r} not found")


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        kind = op["op"]
        path = op["path"]
        if kind == "add":
            result = _add(result, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            result, _ = _remove(result, path)
        elif kind == "replace":
            _get(result, path)
            tokens = _pointer(path)
            if not tokens:
                result = copy.deepcopy(op.get("value"))
            else:
                parent = _parent(result, tokens, path)
                if isinstance(parent, dict):
                    parent[tokens[-1]] = copy.deepcopy(op.get("value"))
                else:
                    parent[_index(parent, tokens[-1], path)] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            src = op.get("from", "")
            if path.startswith(src + "/"):
                raise PatchError(f"cannot move {src!r} into its own child {path!r}")
            result, value = _remove(result, src)
            result = _add(result, path, value)
        elif kind == "copy":
            result = _add(result, path, copy.deepcopy(_get(result, op.get("from", ""))))
        elif kind == "test":
            try:
                have = _get(result, path)
            except PatchError:
                have = None
            if have != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return result


# ---------------------------------------------------------------- strategic merge patch

# Patch merge keys of the built-in lists, by field name (k8s.io/api `patchMergeKey` tags). A list that is not here
# (tolerations, taints, args, command, ...) is atomic: the patch replaces it, exactly as the real server does.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "addresses": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",
    "readinessGates": "conditionType",
    "podIPs": "ip",
    "hostIPs": "ip",
}
# Lists of scalars merged as sets (patchStrategy merge without a key).
MERGE_SCALARS = frozenset({"finalizers"})


def merge_key_for(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # Container ports merge by containerPort, Service ports by port.
        for item in items:
            if isinstance(item, dict) and "containerPort" in item:
                return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(target)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            current = result.get(field)
            if isinstance(current, list) and isinstance(value, list):
                result[field] = [v for v in current if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, list):
            result[key] = _merge_list(
                key, current if isinstance(current, list) else [], value, patch.get(f"$setElementOrder/{key}")
            )
        elif isinstance(value, dict):
            merged = strategic_merge_patch(current, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    return result


def _merge_list(field: str, current: list[Any], patch: list[Any], order: Any) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    if field in MERGE_SCALARS and all(not isinstance(p, dict | list) for p in patch):
        result = list(current)
        for p in patch:
            if p not in result:
                result.append(p)
        return _order_scalars(result, order)
    key = merge_key_for(field, current + patch)
    if key is None or not all(isinstance(p, dict) for p in patch):
        return [copy.deepcopy(p) for p in patch]
    result = [copy.deepcopy(c) for c in current]
    for item in patch:
        ident = item.get(key)
        pos = next((i for i, c in enumerate(result) if isinstance(c, dict) and c.get(key) == ident), None)
        if item.get("$patch") == "delete":
            if pos is not None:
                result.pop(pos)
            continue
        if pos is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged = strategic_merge_patch(result[pos], item)
            result[pos] = merged
    if isinstance(order, list) and order:
        rank = {o.get(key) if isinstance(o, dict) else o: i for i, o in enumerate(order)}
        result.sort(key=lambda c: rank.get(c.get(key) if isinstance(c, dict) else c, len(rank)))
    return result


def _order_scalars(items: list[Any], order: Any) -> list[Any]:
    if not isinstance(order, list) or not order:
        return items
    rank = {o: i for i, o in enumerate(order)}
    return sorted(items, key=lambda v: rank.get(v, len(rank)))


# ---------------------------------------------------------------- server-side apply


_NO_SCHEMA: dict[str, Any] = {}


def _list_keys(field: str, items: list[Any], schema: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The keys a list merges by: from the schema for custom resources, from the built-in table otherwise."""
    if schema is not None:
        if schema.get("x-kubernetes-list-type") == "map":
            return tuple(str(k) for k in schema.get("x-kubernetes-list-map-keys") or ()) or None
        return None  # atomic (the default for custom resources) and sets are replaced whole
    key = merge_key_for(field, items)
    return (key,) if key else None


def _child_schema(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    props = schema.get("properties") or {}
    if key in props:
        return dict(props[key])
    additional = schema.get("additionalProperties")
    return dict(additional) if isinstance(additional, dict) else _NO_SCHEMA


def apply_merge(live: Any, applied: Any, previous: Any, field: str = "", schema: dict[str, Any] | None = None) -> Any:
    """Merge an applied configuration into the live object.

    Fields of `applied` overwrite the live ones (maps recursively, keyed lists by their merge keys, other lists as a
    whole); fields the same manager applied before (`previous`) and no longer sends are removed. List keys come from
    the structural `schema` (custom resources: `x-kubernetes-list-type: map`) or, without one, from the built-in
    patch merge keys. Conflicts between managers are not modelled: every apply behaves as if `force=true`.
    """
    if isinstance(applied, dict) and isinstance(live, dict):
        prev = previous if isinstance(previous, dict) else {}
        result = dict(live)
        for key in prev:
            if key not in applied:
                result.pop(key, None)
        for key, value in applied.items():
            if key in result:
                result[key] = apply_merge(result[key], value, prev.get(key), key, _child_schema(schema, key))
            else:
                result[key] = copy.deepcopy(value)
        return result
    if isinstance(applied, list) and isinstance(live, list):
        keys = _list_keys(field, live + applied, schema)
        if keys is None or not all(isinstance(a, dict) for a in applied + live):
            return copy.deepcopy(applied)
        item_schema = None if schema is None else dict(schema.get("items") or {})

        def ident(item: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(item.get(k) for k in keys)

        prev_items = {ident(p): p for p in previous if isinstance(p, dict)} if isinstance(previous, list) else {}
        applied_ids = {ident(a) for a in applied}
        result_list: list[Any] = [
            item for item in live if not (ident(item) in prev_items and ident(item) not in applied_ids)
        ]
        for item in applied:
            pos = next((i for i, c in enumerate(result_list) if ident(c) == ident(item)), None)
            if pos is None:
                result_list.append(copy.deepcopy(item))
            else:
                result_list[pos] = apply_merge(result_list[pos], item, prev_items.get(ident(item)), "", item_schema)
        return result_list
    return copy.deepcopy(applied)
