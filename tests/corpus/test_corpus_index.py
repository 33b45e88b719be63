"""The corpus itself: at least 60 cases over the five areas, each with a unique name and an expected message."""

from __future__ import annotations

from corpus_support import CASES, load

AREAS = ("mig_parted", "labels", "clusterpolicy", "helm", "clients")


def test_the_corpus_has_every_area_and_at_least_60_cases() -> None:
    assert sorted(p.stem for p in CASES.glob("*.yaml")) == sorted(AREAS)
    counts = {area: len(load(area)) for area in AREAS}
    assert all(n >= 5 for n in counts.values()), counts
    assert sum(counts.values()) >= 60, counts


def test_known_product_problems_say_why() -> None:
    for area in AREAS:
        for case in load(area):
            if "xfail" in case:
                assert len(case["xfail"]) > 40, f"{area}/{case['name']}: say what the product does wrong"
