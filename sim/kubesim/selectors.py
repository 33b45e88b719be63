"""Label and field selectors: parsing and matching, as the real API server does them. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesim.errors import ApiError, bad_request


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # one of: exists, !exists, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op in ("gt", "lt"):
            if not present or value is None:
                return False
            try:
                have = int(value)
            except ValueError:
                return False
            want = int(self.values[0])
            return have > want if self.op == "gt" else have < want
        raise AssertionError(self.op)


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"unable to parse requirement: unbalanced parenthesis in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise bad_request(f"unable to parse requirement: unbalanced parenthesis in {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str, text: str) -> str:
    key = key.strip()
    if not key or any(c in key for c in " ()=!<>,"):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    value = value.strip()
    if len(value) > 63 or any(c in value for c in " ()=!<>,"):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r} in {text!r}")
    return value


def _parse_requirement(part: str) -> Requirement:
    text = part.strip()
    if not text:
        raise bad_request("unable to parse requirement: found '', expected: identifier")
    for word, op in ((" notin ", "notin"), (" in ", "in")):
        idx = text.find(word)
        if idx > 0:
            key = _check_key(text[:idx], text)
            rest = text[idx + len(word) :].strip()
            if not (rest.startswith("(") and rest.endswith(")")):
                raise bad_request(f"unable to parse requirement: found {rest!r}, expected: '('")
            inner = rest[1:-1]
            values = tuple(_check_value(v, text) for v in inner.split(",")) if inner.strip() else ()
            if not values:
                raise bad_request(
                    f"unable to parse requirement: for 'in', 'notin' operators, values set can't be empty in {text!r}"
                )
            return Requirement(key, op, values)
    for sym, op in (("==", "="), ("!=", "!="), ("=", "="), (">", "gt"), ("<", "lt")):
        idx = text.find(sym)
        if idx > 0:
            key = _check_key(text[:idx], text)
            value = _check_value(text[idx + len(sym) :], text)
            if op in ("gt", "lt"):
                try:
                    int(value)
                except ValueError:
                    raise bad_request(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an "
                        f"integer in {text!r}"
                    ) from None
            return Requirement(key, op, (value,))
    if text.startswith("!"):
        return Requirement(_check_key(text[1:], text), "!exists")
    return Requirement(_check_key(text, text), "exists")


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_requirement(p) for p in _split_top(text)))


def selector_from_label_selector_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """A `metav1.LabelSelector` (matchLabels + matchExpressions) as a `LabelSelector`."""
    if not sel:
        return LabelSelector()
    reqs: list[Requirement] = [Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in sel.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            continue
        reqs.append(Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


def format_label_selector(sel: Mapping[str, Any] | None) -> str:
    """`matchLabels` as the `a=b,c=d` string a Scale status carries."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or ())
        key = expr.get("key")
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# ---------------------------------------------------------------- field selectors


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for r in self.requirements:
            have = field_value(obj, r.field)
            if (have == r.value) != (r.op == "="):
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.requirements

    def name(self) -> str | None:
        """The exact `metadata.name` this selector pins, if any (lets a store skip a scan)."""
        for r in self.requirements:
            if r.field == "metadata.name" and r.op == "=":
                return r.value
        return None


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field; a missing field reads as the empty string, as on the real server."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict | list):
        return ""
    return str(cur)


def _split_escaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def parse_field_selector(text: str | None, allowed: tuple[str, ...] | None = None, kind: str = "") -> FieldSelector:
    """Parse `a=b,c!=d`. `allowed` lists the fields the resource supports besides metadata.name/namespace."""
    if text is None or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for part in _split_escaped(text, ","):
        if not part.strip():
            continue
        found = next(((sym, op) for sym, op in (("!=", "!="), ("==", "="), ("=", "=")) if part.find(sym) > 0), None)
        if found is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        sym, op = found
        idx = part.find(sym)
        key = part[:idx].strip()
        value = _unescape(part[idx + len(sym) :])
        if allowed is not None and key not in ("metadata.name", "metadata.namespace") and key not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {key}")
        reqs.append(FieldRequirement(key, op, value))
    return FieldSelector(tuple(reqs))
