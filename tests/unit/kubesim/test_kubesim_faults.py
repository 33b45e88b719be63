"""Fault rules: matching, counts, probability, validation."""

from __future__ import annotations

import pytest

from kubesim.faults import FaultInjector, FaultSpecError, rule_from_dict


def test_matching_and_counts() -> None:
    faults = FaultInjector()
    rule = faults.add(rule_from_dict({"verb": "patch", "resource": "nodes", "name": "n1", "count": 2, "status": 409}))
    assert faults.check("get", "nodes", "", "n1") is None
    assert faults.check("patch", "nodes", "", "n2") is None
    assert faults.check("patch", "nodes/status", "", "n1") is None  # a plain resource does not match subresources
    assert faults.check("patch", "nodes", "", "n1") is rule
    assert faults.check("patch", "nodes", "", "n1") is rule
    assert faults.check("patch", "nodes", "", "n1") is None  # count used up, rule gone
    assert faults.rules() == []
    sub = faults.add(rule_from_dict({"resource": "pods/status"}))
    assert faults.check("update", "pods/status", "ns", "p") is sub
    assert faults.check("update", "pods", "ns", "p") is None
    assert faults.remove(sub.id) and not faults.remove(sub.id)


def test_probability_is_seeded() -> None:
    def hits(seed: int) -> list[bool]:
        faults = FaultInjector(seed)
        faults.add(rule_from_dict({"probability": 0.5}))
        return [faults.check("get", "pods", "", "x") is not None for _ in range(200)]

    first = hits(7)
    assert first == hits(7)
    assert 60 < sum(first) < 140


@pytest.mark.parametrize(
    "spec",
    [{"status": 418}, {"action": "explode"}, {"probability": 1.5}, {"count": 0}, {"verb": "get", "typo": 1}],
)
def test_bad_rules_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(FaultSpecError):
        rule_from_dict(spec)
