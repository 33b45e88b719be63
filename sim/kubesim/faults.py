"""Fault injection: make chosen API requests fail, by verb, resource, namespace, name, count or probability."""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from kubesim.errors import KubeSimError

ACTIONS = ("error", "drop")
STATUSES = (409, 429, 500, 503, 504)


class FaultSpecError(KubeSimError):
    """A fault rule that cannot be understood."""


@dataclass
class FaultRule:
    """Fail matching requests. `*` matches anything; `resource` is a plural, optionally `plural/subresource`."""

    verb: str = "*"  # get, list, watch, create, update, patch, delete, deletecollection
    resource: str = "*"
    namespace: str = "*"
    name: str = "*"
    action: str = "error"  # "error" answers `status`; "drop" closes the connection without an answer
    status: int = 500
    count: int | None = None  # how many requests to fail; None: until removed
    probability: float = 1.0
    id: int = 0
    hits: int = field(default=0)

    def matches(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        def ok(want: str, have: str) -> bool:
            return want == "*" or want == have

        resource_ok = ok(self.resource, resource) or (
            "/" not in self.resource
            and self.resource != "*"
            and resource.split("/")[0] == self.resource
            and "/" not in resource
        )
        return ok(self.verb, verb) and resource_ok and ok(self.namespace, namespace) and ok(self.name, name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_from_dict(data: dict[str, Any]) -> FaultRule:
    known = {"verb", "resource", "namespace", "name", "action", "status", "count", "probability"}
    unknown = set(data) - known
    if unknown:
        raise FaultSpecError(f"unknown fault fields {sorted(unknown)}; valid fields are {sorted(known)}")
    rule = FaultRule(**{k: v for k, v in data.items() if k in known})
    if rule.action not in ACTIONS:
        raise FaultSpecError(f"fault action {rule.action!r} is not one of {ACTIONS}")
    if rule.action == "error" and rule.status not in STATUSES:
        raise FaultSpecError(f"fault status {rule.status} is not one of {STATUSES}")
    if not 0.0 <= float(rule.probability) <= 1.0:
        raise FaultSpecError(f"fault probability {rule.probability} is not within [0, 1]")
    if rule.count is not None and rule.count < 1:
        raise FaultSpecError(f"fault count {rule.count} must be at least 1")
    return rule


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        rule.id = next(self._ids)
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def check(self, verb: str, resource: str, namespace: str, name: str) -> FaultRule | None:
        """The rule that fails this request, if any (consuming one of its count)."""
        for rule in self._rules:
            if not rule.matches(verb, resource, namespace, name):
                continue
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            rule.hits += 1
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self._rules.remove(rule)
            return rule
        return None
