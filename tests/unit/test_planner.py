"""The placement planner: name resolution, max counts, exclusivity, compute-instance packing, exact placement."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mig_manager.catalog import GpuInstanceProfile, GpuModel, Placement, ProfileTable, default_catalog
from mig_manager.errors import ConfigSelectionError, PlanError
from mig_manager.planner import (
    DoesNotFitError,
    ExclusiveProfileError,
    GpuPlan,
    NodeGpu,
    TooManyError,
    UnknownProfileError,
    plan,
    plan_node,
)
from mig_manager.spec import PciId, load_spec

CATALOG = default_catalog()
H100 = CATALOG.lookup("H100-80GB").table
A100_40 = CATALOG.lookup("A100-40GB").table
A30 = CATALOG.lookup("A30").table
RTX = CATALOG.lookup("RTX-PRO-6000").table


def layout(p: GpuPlan) -> list[tuple[str, str, list[str]]]:
    return [
        (str(gi.profile.name), str(gi.placement), [str(ci.name) for ci in gi.compute_instances]) for gi in p.instances
    ]


@pytest.mark.parametrize(
    ("table", "request_", "expected"),
    [
        pytest.param(
            H100,
            {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
            [
                ("2g.20gb", "0:2", ["2g.20gb"]),
                ("1g.10gb", "2:1", ["1g.10gb"]),
                ("1g.10gb", "3:1", ["1g.10gb"]),
                ("3g.40gb", "4:4", ["3g.40gb"]),
            ],
            id="h100-balanced-as-the-driver-lays-it-out",
        ),
        pytest.param(H100, {"7g.80gb": 1}, [("7g.80gb", "0:8", ["7g.80gb"])], id="h100-whole"),
        pytest.param(
            H100,
            {"1c.3g.40gb": 3},
            [("3g.40gb", "0:4", ["1c.3g.40gb", "1c.3g.40gb", "1c.3g.40gb"])],
            id="ci-profiles-share-one-gi",
        ),
        pytest.param(
            H100,
            {"2c.3g.40gb": 1, "1c.3g.40gb": 2},
            [("3g.40gb", "0:4", ["2c.3g.40gb", "1c.3g.40gb"]), ("3g.40gb", "4:4", ["1c.3g.40gb"])],
            id="ci-overflow-opens-a-second-gi",
        ),
        pytest.param(
            H100,
            {"3g.40gb": 1, "1c.3g.40gb": 1},
            [("3g.40gb", "0:4", ["3g.40gb"]), ("3g.40gb", "4:4", ["1c.3g.40gb"])],
            id="full-ci-owns-its-gi",
        ),
        pytest.param(
            A100_40,
            {"1g.10gb": 4},
            [("1g.10gb", f"{s}:2", ["1g.10gb"]) for s in (0, 2, 4, 6)],
            id="a100-40-1g.10gb-is-double-memory",
        ),
        pytest.param(
            A30,
            {"2g.12gb": 1, "1g.6gb": 2},
            [("2g.12gb", "0:2", ["2g.12gb"]), ("1g.6gb", "2:1", ["1g.6gb"]), ("1g.6gb", "3:1", ["1g.6gb"])],
            id="a30-balanced",
        ),
        pytest.param(
            RTX,
            {"2g.48gb": 1, "1g.24gb": 2},
            [("2g.48gb", "0:6", ["2g.48gb"]), ("1g.24gb", "6:3", ["1g.24gb"]), ("1g.24gb", "9:3", ["1g.24gb"])],
            id="rtx-pro-balanced-matches-observed-lgi",
        ),
        pytest.param(
            RTX,
            {"1g.24gb+me.all": 1, "1g.24gb-me": 3},
            [("1g.24gb-me", f"{s}:3", ["1g.24gb-me"]) for s in (0, 3, 6)]
            + [("1g.24gb+me.all", "9:3", ["1g.24gb+me.all"])],
            id="me-all-with-no-me",
        ),
        pytest.param(H100, {}, [], id="empty"),
        pytest.param(H100, {"1g.10gb": 0, "2g.20gb": 1}, [("2g.20gb", "0:2", ["2g.20gb"])], id="zero-count-dropped"),
        pytest.param(H100, {"1c.1g.10gb": 1}, [("1g.10gb", "0:1", ["1g.10gb"])], id="non-canonical-name"),
    ],
)
def test_plan_layouts(
    table: ProfileTable, request_: dict[str, int], expected: list[tuple[str, str, list[str]]]
) -> None:
    assert layout(plan(table, request_)) == expected


def test_plan_is_deterministic() -> None:
    request_ = {"1g.10gb": 3, "2g.20gb": 1, "1g.20gb": 1}
    assert layout(plan(H100, request_)) == layout(plan(H100, dict(reversed(list(request_.items())))))


def test_devices_counts_compute_instances_by_canonical_name() -> None:
    assert plan(H100, {"1c.3g.40gb": 3, "1c.1g.10gb": 2}).devices() == {"1c.3g.40gb": 3, "1g.10gb": 2}


@pytest.mark.parametrize(
    ("table", "request_", "error", "message"),
    [
        (
            H100,
            {"1g.5gb": 1},
            UnknownProfileError,
            r"profile 1g\.5gb \(did you mean .*\) is not available on H100-SXM5-80GB; valid names: 1g\.10gb, ",
        ),
        (
            H100,
            {"4c.7g.80gb": 1},
            UnknownProfileError,
            r"4c\.7g\.80gb is not available inside a 7g\.80gb GPU "
            r"instance on H100-SXM5-80GB; valid: 1c\.7g\.80gb, 2c\.7g\.80gb, 3c\.7g\.80gb, 7g\.80gb",
        ),
        (A30, {"3g.12gb": 1}, UnknownProfileError, r"not available on A30-PCIE-24GB"),
        (H100, {"1g.10gb": 8}, TooManyError, r"requested 8 x 1g\.10gb but H100-SXM5-80GB allows at most 7"),
        (H100, {"1g.10gb+me": 2}, TooManyError, r"at most 1"),
        (
            H100,
            {"1c.3g.40gb": 7},
            TooManyError,
            r"7 x 1c\.3g\.40gb need at least 3 3g\.40gb GPU instances but "
            r"H100-SXM5-80GB allows at most 2",
        ),
        (
            H100,
            {"2g.20gb": 3, "1g.10gb": 2},
            DoesNotFitError,
            r"1g\.10gb \(instance 2 of 2\) cannot be placed on "
            r"H100-SXM5-80GB: it needs one of the memory-slice placements \{0,1,2,3,4,5,6\}:1 .*2g\.20gb at 0:2 holds "
            r"slices 0-1 .*In total the request needs 8 compute slices; H100-SXM5-80GB has 7\.",
        ),
        (H100, {"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}, DoesNotFitError, r"4g\.40gb at 0:4 holds slices 0-3"),
        (A100_40, {"1g.10gb": 4, "1g.5gb": 1}, DoesNotFitError, r"1g\.5gb \(instance 1 of 1\) cannot be placed"),
        (
            RTX,
            {"1g.24gb+me.all": 1, "1g.24gb": 1},
            ExclusiveProfileError,
            r"1g\.24gb\+me\.all takes every media "
            r"engine of RTX-PRO-6000-BLACKWELL and can only be combined with 1g\.24gb-me, 2g\.48gb-me; remove 1g\.24gb",
        ),
        (H100, {"1g.10gb": -1}, PlanError, r"must not be negative"),
    ],
)
def test_plan_errors_say_what_and_why(
    table: ProfileTable, request_: dict[str, int], error: type[PlanError], message: str
) -> None:
    with pytest.raises(error, match=message):
        plan(table, request_)


def test_does_not_fit_reports_attempts() -> None:
    with pytest.raises(DoesNotFitError) as info:
        plan(H100, {"2g.20gb": 3, "1g.10gb": 2})
    assert info.value.attempts > 0


# ---------------------------------------------------------------------------------------------------------------------
# Properties: plans are valid, and the exact search agrees with brute force.


def _coexist_ok(profiles: list[GpuInstanceProfile]) -> bool:
    names = {p.name for p in profiles}
    return all(p.coexists_only_with is None or names <= p.coexists_only_with | {p.name} for p in profiles)


def brute_force_fits(table: ProfileTable, request_: dict[str, int]) -> bool:
    """Try every assignment of a placement to every instance: the definition of "fits" for GI-level requests."""
    profiles: list[GpuInstanceProfile] = []
    for name, count in request_.items():
        gi = next(p for p in table.gpu_instance_profiles if str(p.name) == name)
        if count > gi.max_count:
            return False
        profiles.extend([gi] * count)
    if not _coexist_ok(profiles) or sum(p.slices for p in profiles) > table.compute_slices:
        return False
    for choice in itertools.product(*(p.placements for p in profiles)):
        if all(not a.overlaps(b) for a, b in itertools.combinations(choice, 2)):
            return True
    return False


@st.composite
def gi_requests(draw: st.DrawFn) -> tuple[GpuModel, dict[str, int]]:
    model = draw(st.sampled_from(CATALOG.models))
    names = [str(p.name) for p in model.table.gpu_instance_profiles]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    request_: dict[str, int] = {}
    budget = 5  # keeps brute force at most 7**5 assignments
    for name in chosen:
        if budget == 0:
            break
        count = draw(st.integers(1, budget))
        request_[name] = count
        budget -= count
    return model, request_


def _check_valid(table: ProfileTable, result: GpuPlan) -> None:
    placements = [gi.placement for gi in result.instances]
    assert all(not a.overlaps(b) for a, b in itertools.combinations(placements, 2))
    for gi in result.instances:
        assert gi.placement in gi.profile.placements
        assert sum(ci.profile.slices for ci in gi.compute_instances) <= gi.profile.slices
    assert sum(gi.profile.slices for gi in result.instances) <= table.compute_slices
    for profile in table.gpu_instance_profiles:
        assert sum(1 for gi in result.instances if gi.profile is profile) <= profile.max_count


@settings(max_examples=400, deadline=None)
@given(gi_requests())
def test_plan_fits_exactly_when_brute_force_does(case: tuple[GpuModel, dict[str, int]]) -> None:
    model, request_ = case
    expected = brute_force_fits(model.table, request_)
    try:
        result = plan(model.table, request_)
    except PlanError:
        assert not expected, f"{model.key} {request_}: brute force found a placement"
        return
    assert expected, f"{model.key} {request_}: planned although brute force finds none"
    _check_valid(model.table, result)
    assert result.devices() == {k: v for k, v in request_.items() if v}


@st.composite
def ci_requests(draw: st.DrawFn) -> tuple[GpuModel, dict[str, int]]:
    model = draw(st.sampled_from(CATALOG.models))
    names = model.table.valid_names()
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    return model, {n: draw(st.integers(0, 4)) for n in chosen}


@settings(max_examples=300, deadline=None)
@given(ci_requests())
def test_plans_with_compute_instances_are_valid(case: tuple[GpuModel, dict[str, int]]) -> None:
    model, request_ = case
    try:
        result = plan(model.table, request_)
    except PlanError:
        return
    _check_valid(model.table, result)
    assert result.devices() == {k: v for k, v in request_.items() if v}


# ---------------------------------------------------------------------------------------------------------------------
# plan_node: device-filter and devices rules on a node


NODE_SPEC = load_spec(
    """
version: v1
mig-configs:
  mixed:
    - device-filter: "0x20B710DE"
      devices: all
      mig-enabled: true
      mig-devices: {"2g.12gb": 2}
    - device-filter: ["0x20B210DE"]
      devices: [0]
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
    - device-filter: ["0x20B210DE"]
      devices: [0, 1]
      mig-enabled: false
  explicit-on-t4:
    - devices: [3]
      mig-enabled: true
      mig-devices: {}
  all-on:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 8}
"""
).spec


def node() -> list[NodeGpu]:
    a100 = CATALOG.lookup("A100-80GB")
    a30 = CATALOG.lookup("A30")
    return [
        NodeGpu(0, PciId(0x20B2, 0x10DE, 0x1463, 0x10DE), a100.table, a100.product_name),
        NodeGpu(1, PciId(0x20B2, 0x10DE), a100.table, a100.product_name),
        NodeGpu(2, PciId(0x20B7, 0x10DE), a30.table, a30.product_name),
        NodeGpu(3, PciId(0x1EB8, 0x10DE), None, "Tesla T4"),
    ]


def test_plan_node_applies_filters_devices_and_last_entry_wins() -> None:
    result = plan_node(NODE_SPEC, "mixed", node())
    assert result.ok
    by_index = {d.gpu.index: d for d in result.gpus}
    assert sorted(by_index) == [0, 1, 2]
    assert (by_index[0].entry, by_index[0].mig_enabled, by_index[0].also_selected_by) == (2, False, (1,))
    assert (by_index[1].entry, by_index[1].mig_enabled) == (2, False)
    assert by_index[2].plan is not None and by_index[2].plan.devices() == {"2g.12gb": 2}
    assert [g.index for g in result.untouched] == [3]
    assert any("entries [1, 2]" in n for n in result.notes)


def test_plan_node_non_mig_gpu_under_devices_all_is_untouched_but_explicit_index_fails() -> None:
    result = plan_node(NODE_SPEC, "explicit-on-t4", node())
    assert not result.ok
    assert "GPU 3 (Tesla T4) is not MIG-capable" in str(result.gpus[0].error)
    assert [g.index for g in result.untouched] == [0, 1, 2]


def test_plan_node_reports_each_gpu_that_does_not_fit() -> None:
    result = plan_node(NODE_SPEC, "all-on", node())
    errors = {d.gpu.index: str(d.error) for d in result.gpus if d.error}
    assert "requested 8 x 1g.10gb but A100-SXM4-80GB allows at most 7" in errors[0]
    assert errors[2].startswith("profile 1g.10gb (did you mean 1g.6gb")
    assert "is not available on A30-PCIE-24GB" in errors[2]
    assert [g.index for g in result.untouched] == [3]


def test_plan_node_unknown_config() -> None:
    with pytest.raises(ConfigSelectionError, match="all-balanced"):
        plan_node(NODE_SPEC, "all-balanced", node())


def test_placement_str() -> None:
    assert str(Placement(4, 4)) == "4:4"
