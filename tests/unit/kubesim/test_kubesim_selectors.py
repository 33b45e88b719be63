"""Label and field selectors, table-driven."""

from __future__ import annotations

import pytest

from kubesim.errors import ApiError
from kubesim.selectors import (
    format_label_selector,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
)

LABELS = {"env": "prod", "tier": "web", "gpus": "4"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("env=prod", True),
        ("env==prod", True),
        ("env=dev", False),
        ("env!=dev", True),
        ("env!=prod", False),
        ("missing!=x", True),
        ("env in (dev,prod)", True),
        ("env in (dev, qa)", False),
        ("env notin (dev,qa)", True),
        ("env notin (prod)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("gpus>3", True),
        ("gpus>4", False),
        ("gpus<5", True),
        ("env=prod,tier=web", True),
        ("env=prod,tier=db", False),
        ("env in (prod,dev),!missing,tier", True),
        ("env=", False),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


def test_empty_value_matches_an_empty_label() -> None:
    assert parse_label_selector("k=").matches({"k": ""})


@pytest.mark.parametrize("bad", ["env in prod", "env in ()", "a b=c", "gpus>x", "(env=prod", "=x"])
def test_bad_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse_label_selector(bad)
    assert exc.value.code == 400 and exc.value.reason == "BadRequest"


def test_label_selector_object() -> None:
    sel = {
        "matchLabels": {"app": "x"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "gone", "operator": "DoesNotExist"},
        ],
    }
    parsed = selector_from_label_selector_object(sel)
    assert parsed.matches({"app": "x", "tier": "a"})
    assert not parsed.matches({"app": "x", "tier": "c"})
    assert not parsed.matches({"app": "x", "tier": "a", "gone": "1"})
    assert format_label_selector(sel) == "app=x,tier in (a,b),!gone"


POD = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "hostNetwork": True},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("metadata.name=p", True),
        ("metadata.name==p", True),
        ("metadata.name!=p", False),
        ("metadata.namespace=ns,spec.nodeName=n1", True),
        ("spec.nodeName=n2", False),
        ("status.phase!=Succeeded,status.phase!=Failed", True),
        ("spec.hostNetwork=true", True),
        ("status.podIP=", True),  # an empty value matches a missing field
        ("spec.nodeName=", False),
    ],
)
def test_field_selector(selector: str, matches: bool) -> None:
    parsed = parse_field_selector(selector, ("spec.nodeName", "status.phase", "spec.hostNetwork", "status.podIP"))
    assert parsed.matches(POD) is matches


def test_field_selector_escapes_and_unsupported_fields() -> None:
    assert parse_field_selector(r"metadata.name=a\,b").matches({"metadata": {"name": "a,b"}})
    with pytest.raises(ApiError) as exc:
        parse_field_selector("spec.other=x", ("spec.nodeName",))
    assert exc.value.code == 400 and "field label not supported: spec.other" in exc.value.message
    assert parse_field_selector("metadata.name=x").name() == "x"
