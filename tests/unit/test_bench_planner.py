"""Smoke tests of bench/planner.py's own helpers: mig-parted's ordering loop, the driver-style simulator, the counts."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from mig_manager.catalog import ProfileTable, default_catalog

BENCH = Path(__file__).resolve().parents[2] / "bench" / "planner.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_planner", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_planner"] = module  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(module)
    return module


bench = _load()


def table(key: str) -> ProfileTable:
    return default_catalog().lookup(key).table


def test_distinct_orderings_are_each_distinct_permutation_once_in_go_order() -> None:
    items = [0, 0, 1, 2, 2]
    orderings = list(bench.distinct_orderings(items))
    assert len(orderings) == len(set(orderings)) == math.factorial(5) // (2 * 2)
    assert all(Counter(o) == Counter(items) for o in orderings)
    assert orderings[0] == tuple(items)  # mig-parted tries the sorted list first
    assert orderings[1] == (0, 0, 2, 1, 2)  # then swaps from the right, as the Go recursion does
    assert list(bench.distinct_orderings([3, 3, 3])) == [(3, 3, 3)]


def test_flatten_sorts_by_g_then_c_then_attributes_descending() -> None:
    h100 = table("H100-80GB")
    flat = bench.flatten_request(h100, {"1g.10gb": 2, "3g.40gb": 1, "1g.10gb+me": 1, "2g.20gb": 1})
    assert [str(p.name) for p in flat] == ["3g.40gb", "2g.20gb", "1g.10gb+me", "1g.10gb", "1g.10gb"]


def test_first_fit_takes_the_lowest_free_start() -> None:
    a100 = table("A100-40GB")
    assert bench.replay(a100, bench.first_fit_order, ["3g.20gb", "2g.10gb", "1g.5gb", "1g.5gb"]) == (
        "0:4",
        "4:2",
        "6:1",
        None,
    )


def test_observed_model_reproduces_every_observation_and_first_fit_does_not() -> None:
    result = bench.check_observations({m.key: m for m in default_catalog().models})
    assert result["observed"]["reproduced"] == result["observed"]["of"] == len(bench.OBSERVATIONS)
    assert result["first_fit"]["reproduced"] < len(bench.OBSERVATIONS)
    a100 = table("A100-40GB")
    # the documented known issue: a 3g created after small ones fails
    assert bench.replay(a100, bench.observed_order, ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"])[-1] is None
    assert bench.replay(a100, bench.first_fit_order, ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"])[-1] == "4:4"


def test_driver_refuses_past_max_count_and_next_to_an_exclusive_profile() -> None:
    h100 = table("H100-80GB")
    assert bench.replay(h100, bench.first_fit_order, ["1g.10gb+me", "1g.10gb+me"]) == ("0:1", None)
    rtx = table("RTX-PRO-6000-BLACKWELL")
    assert bench.replay(rtx, bench.first_fit_order, ["1g.24gb", "1g.24gb+me.all"]) == ("0:3", None)
    assert bench.replay(rtx, bench.first_fit_order, ["1g.24gb-me", "1g.24gb+me.all"]) == ("0:3", "3:3")


def test_mig_parted_all_balanced_needs_a_later_ordering_only_under_first_fit() -> None:
    a100 = table("A100-80GB")
    balanced = {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    first_fit = bench.simulate_mig_parted(a100, balanced, bench.first_fit_order)
    assert first_fit.succeeded and not first_fit.first_ordering_ok
    assert (first_fit.orderings, first_fit.gi_creations) == (4, 15)
    observed = bench.simulate_mig_parted(a100, balanced, bench.observed_order)
    assert observed.first_ordering_ok and (observed.orderings, observed.gi_creations) == (1, 4)
    assert set(observed.placements) == {"3g.40gb@4:4", "2g.20gb@0:2", "1g.10gb@2:1", "1g.10gb@3:1"}


def test_mig_parted_counts_every_ordering_of_an_infeasible_request() -> None:
    h100 = table("H100-80GB")
    run = bench.simulate_mig_parted(h100, {"3g.40gb": 3}, bench.first_fit_order)
    assert not run.succeeded and (run.orderings, run.gi_creations) == (1, 3)
    # {2g.20gb: 3, 1g.10gb: 2} has 5! / (3! 2!) = 10 distinct orderings, and every one fails
    run = bench.simulate_mig_parted(h100, {"2g.20gb": 3, "1g.10gb": 2}, bench.first_fit_order)
    assert not run.succeeded and run.orderings == 10
    assert bench.exceeds_totals(h100, {"2g.20gb": 3, "1g.10gb": 2})
    assert not bench.exceeds_totals(h100, {"2g.20gb": 3, "1g.10gb": 1})


@pytest.mark.parametrize(
    ("request_", "fits"),
    [
        ({"3g.40gb": 1, "1g.10gb": 4}, True),
        ({"1g.20gb": 1, "1g.10gb": 6}, True),
        ({"3g.40gb": 2, "1g.20gb": 1}, False),
        ({"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}, False),
        ({"1g.10gb+me": 2}, False),
    ],
)
def test_brute_force_fits(request_: dict[str, int], fits: bool) -> None:
    h100 = table("H100-80GB")
    counts = [request_.get(str(p.name), 0) for p in h100.gpu_instance_profiles]
    assert bench.brute_force_fits(h100, counts) is fits


def test_placement_level_counts_match_mig_facts_4_4() -> None:
    h100 = table("H100-80GB")
    plain = [not p.name.attributes for p in h100.gpu_instance_profiles]
    no_double = [not p.name.attributes and not bench.is_double_memory_1g(h100, p) for p in h100.gpu_instance_profiles]
    assert bench.placement_maximal(h100, plain) == (78, 38)
    assert bench.placement_maximal(h100, no_double) == (19, 14)


def test_maximal_multisets_on_a30() -> None:
    a30 = table("A30")
    geometries = bench.enumerate_geometries(a30)
    assert not geometries.disagreements
    maximal = {tuple(sorted(bench.request_of(a30, v).items())) for v in geometries.maximal([True] * 5)}
    assert len(maximal) == 9
    assert (("1g.6gb", 2), ("2g.12gb", 1)) in maximal
    assert (("1g.6gb", 1), ("2g.12gb", 1)) not in maximal  # a second 1g still fits
