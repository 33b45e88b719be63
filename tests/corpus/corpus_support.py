"""Loading the corpus: `cases/<area>.yaml` holds `cases:`, a list of mappings, each with a unique `name`, the input,
and what the product must answer (`expect`: substrings every one of which must appear). A case with `xfail: <reason>`
is a known product problem: it runs as xfail(strict=True), so it turns into a failure the day the product is fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CASES = Path(__file__).resolve().parent / "cases"


def load(area: str) -> list[dict[str, Any]]:
    data = yaml.safe_load((CASES / f"{area}.yaml").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data["cases"]
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), f"{area}: duplicate case names"
    for case in cases:
        assert case.get("expect"), f"{area}/{case['name']}: no expected message"
    return cases


def params(area: str) -> list[Any]:
    """pytest params of an area's cases, id = case name, xfail(strict=True) where the case says so."""
    out = []
    for case in load(area):
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if case.get("xfail") else []
        out.append(pytest.param(case, id=case["name"], marks=marks))
    return out


def missing(text: str, expect: list[str]) -> list[str]:
    """The expected substrings `text` lacks."""
    return [e for e in expect if e not in text]
