"""Planner benchmark (issue 2, acceptance 6): speed, geometry counts, and attempts against mig-parted's retry loop.

Run from the repository root: `.venv/bin/python bench/planner.py` (or `make bench`). Writes
`bench/results/planner.json` and prints a short summary. Three parts:

1. `plan_node` over every config of the project's default config (generate-config over the whole catalog, forced
   device filters) for an 8-GPU node of each catalog model; target under 50 ms per model for the whole set.
2. Maximal geometries per model: multisets of GPU-instance profiles that `plan` accepts and to which no further
   profile can be added, enumerated here and cross-checked against an independent brute-force placement search;
   also the placement-level count that mig-facts 4.4 used, and whether any request whose compute and memory totals
   fit is still rejected (a placement conflict only a search can find).
3. Infeasible requests: the exact search's `attempts` against the GPU-instance creation calls mig-parted makes when
   it tries every distinct ordering of the flattened instance list and lets a simulated driver place each instance.

The driver is simulated with two placement models, because NVIDIA documents neither:
- `first_fit`: each GI goes to the free possible placement of its profile with the lowest start.
- `observed`: like `first_fit`, except that on 7-compute-slice GPUs 2g and 3g instances go to memory slice 4 when
  that placement is free. It reproduces every observed `nvidia-smi mig -cgi` outcome listed in `OBSERVATIONS`
  (mig-profiles-observed.md section 5), which `first_fit` does not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mig_manager.catalog import GpuInstanceProfile, GpuModel, Placement, ProfileTable, default_catalog
from mig_manager.planner import (
    DoesNotFitError,
    ExclusiveProfileError,
    NodeGpu,
    TooManyError,
    device_types_of_models,
    generate_config,
    plan,
    plan_node,
)

RESULT_PATH = Path(__file__).resolve().parent / "results" / "planner.json"
TARGET_MS_PER_MODEL = 50.0
GPUS_PER_NODE = 8
TIMING_MIN_REPEATS = 5
TIMING_MAX_REPEATS = 50
TIMING_MIN_SECONDS = 0.25
RANDOM_SEED = 20260228
RANDOM_REQUESTS = 200
RANDOM_MAX_PROFILES = 3
RANDOM_MAX_INSTANCES = 7
RANDOM_OVER_MAX = 10
EXAMPLES_KEPT = 8

# ---------------------------------------------------------------------------------------------------------------------
# Driver-style placement (what CreateGpuInstance does without a placement)

DriverModel = Callable[[ProfileTable, GpuInstanceProfile], tuple[Placement, ...]]


def first_fit_order(table: ProfileTable, profile: GpuInstanceProfile) -> tuple[Placement, ...]:
    """The order in which the driver tries a profile's placements: lowest start first."""
    return tuple(sorted(profile.placements))


def observed_order(table: ProfileTable, profile: GpuInstanceProfile) -> tuple[Placement, ...]:
    """Lowest start first, except 2g and 3g on 7-compute-slice GPUs, which try memory slice 4 first.

    Fitted to the observed outcomes in `OBSERVATIONS` (an empty A100 puts a 3g and a 2g at 4, 1g from 0 upwards;
    2g after a 3g at 4 goes to 0); not documented by NVIDIA.
    """
    ordered = sorted(profile.placements)
    if table.compute_slices == 7 and profile.slices in (2, 3):
        preferred = [p for p in ordered if p.start == 4]
        return (*preferred, *(p for p in ordered if p.start != 4))
    return tuple(ordered)


DRIVER_MODELS: Mapping[str, DriverModel] = {"first_fit": first_fit_order, "observed": observed_order}
DRIVER_DESCRIPTIONS: Mapping[str, str] = {
    "first_fit": "each GPU instance goes to the free possible placement of its profile with the lowest start",
    "observed": "lowest free start, except 2g and 3g on 7-compute-slice GPUs, which take memory slice 4 when free "
    "(fitted to the observed nvidia-smi outcomes; NVIDIA does not document the driver's choice)",
}
DRIVER_COMMON = (
    "Both models also refuse a creation beyond the profile's max count, beyond the GPU's compute slices, or "
    "next to a profile it cannot coexist with; one GI creation call is counted per CreateGpuInstance, including "
    "the failing one; an ordering stops at its first failure (mig-parted then clears the GPU and tries the next)."
)


@dataclass
class DriverGpu:
    """One simulated GPU in MIG mode that places GPU instances itself, as `CreateGpuInstance(profile)` does."""

    table: ProfileTable
    driver: DriverModel
    occupied: int = 0
    created: list[tuple[GpuInstanceProfile, Placement]] = field(default_factory=list)

    def can_coexist(self, profile: GpuInstanceProfile) -> bool:
        for other, _ in self.created:
            if other.name == profile.name:
                continue
            if profile.coexists_only_with is not None and other.name not in profile.coexists_only_with:
                return False
            if other.coexists_only_with is not None and profile.name not in other.coexists_only_with:
                return False
        return True

    def create(self, profile: GpuInstanceProfile) -> Placement | None:
        """Create one GPU instance where the driver model puts it; None for NVML_ERROR_INSUFFICIENT_RESOURCES."""
        if sum(1 for p, _ in self.created if p.name == profile.name) >= profile.max_count:
            return None
        if sum(p.slices for p, _ in self.created) + profile.slices > self.table.compute_slices:
            return None
        if not self.can_coexist(profile):
            return None
        for placement in self.driver(self.table, profile):
            mask = ((1 << placement.size) - 1) << placement.start
            if not self.occupied & mask:
                self.occupied |= mask
                self.created.append((profile, placement))
                return placement
        return None


# Observed outcomes of GI creation without placements (mig-profiles-observed.md section 5): model, profiles created
# in order, the resulting placements in the same order (None where the creation failed).
OBSERVATIONS: tuple[tuple[str, str, tuple[str, ...], tuple[str | None, ...]], ...] = (
    ("A100-40GB -cgi 9,3g.20gb", "A100-SXM4-40GB", ("3g.20gb", "3g.20gb"), ("4:4", "0:4")),
    (
        "A100-40GB -cgi 9,19,14,19",
        "A100-SXM4-40GB",
        ("3g.20gb", "1g.5gb", "2g.10gb", "1g.5gb"),
        ("4:4", "0:1", "2:2", "1:1"),
    ),
    (
        "A100-40GB -cgi 14,19,19,19,19,19",
        "A100-SXM4-40GB",
        ("2g.10gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb", "1g.5gb"),
        ("4:2", "0:1", "1:1", "2:1", "3:1", "6:1"),
    ),
    (
        "A100-40GB -cgi 19,19,14,9",
        "A100-SXM4-40GB",
        ("1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"),
        ("0:1", "1:1", "4:2", None),
    ),
    (
        "H100 PCIe -cgi 9,19,19,19",
        "H100-PCIE-80GB",
        ("3g.40gb", "1g.10gb", "1g.10gb", "1g.10gb"),
        ("4:4", "0:1", "1:1", "2:1"),
    ),
    (
        "80GB A100/H100 mig-parted all-balanced",
        "A100-SXM4-80GB",
        ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"),
        ("4:4", "0:2", "2:1", "3:1"),
    ),
    ("A30 -cgi 14,14,5", "A30-PCIE-24GB", ("1g.6gb", "1g.6gb", "2g.12gb"), ("0:1", "1:1", "2:2")),
    ("RTX PRO 6000 -cgi 2g,1g,1g", "RTX-PRO-6000-BLACKWELL", ("2g.48gb", "1g.24gb", "1g.24gb"), ("0:6", "6:3", "9:3")),
    (
        "RTX PRO 6000 -cgi 1g x4",
        "RTX-PRO-6000-BLACKWELL",
        ("1g.24gb", "1g.24gb", "1g.24gb", "1g.24gb"),
        ("0:3", "3:3", "6:3", "9:3"),
    ),
)


def profile_by_name(table: ProfileTable, name: str) -> GpuInstanceProfile:
    for profile in table.gpu_instance_profiles:
        if str(profile.name) == name:
            return profile
    raise KeyError(f"{table.model} has no GPU-instance profile {name}")


def replay(table: ProfileTable, driver: DriverModel, names: Sequence[str]) -> tuple[str | None, ...]:
    """Create the named GPU instances in order on an empty simulated GPU; each one's placement, or None if it failed.

    Unlike mig-parted, a failure does not stop the sequence (as with consecutive `nvidia-smi mig -cgi` calls).
    """
    gpu = DriverGpu(table, driver)
    out: list[str | None] = []
    for name in names:
        placed = gpu.create(profile_by_name(table, name))
        out.append(None if placed is None else str(placed))
    return tuple(out)


def check_observations(models: Mapping[str, GpuModel]) -> dict[str, Any]:
    """Which observed driver outcomes each driver model reproduces (placements compared as a multiset for `9,9`)."""
    result: dict[str, Any] = {}
    for driver_name, driver in DRIVER_MODELS.items():
        rows = []
        for label, model, names, expected in OBSERVATIONS:
            got = replay(models[model].table, driver, names)
            same = got == expected or (len(set(names)) == 1 and sorted(map(str, got)) == sorted(map(str, expected)))
            rows.append({"observation": label, "expected": list(expected), "simulated": list(got), "matches": same})
        result[driver_name] = {
            "reproduced": sum(1 for r in rows if r["matches"]),
            "of": len(rows),
            "rows": rows,
        }
    return result


# ---------------------------------------------------------------------------------------------------------------------
# mig-parted's SetMigConfig retry loop


def flatten_request(table: ProfileTable, request: Mapping[str, int]) -> list[GpuInstanceProfile]:
    """mig-parted's `MigConfig.Flatten`: one element per instance, sorted by G desc, C desc, attribute string desc.

    Go's sort is unstable and map order random, so ties (e.g. 1g.10gb and the double-memory 1g.20gb) have no defined
    order there; here they keep the profile table's order.
    """
    rank = {p.name: i for i, p in enumerate(table.gpu_instance_profiles)}
    flat = [profile_by_name(table, name) for name, count in request.items() for _ in range(count)]
    flat.sort(key=lambda p: rank[p.name])
    flat.sort(key=lambda p: ",".join(p.name.attributes), reverse=True)  # stable: ties keep the table order
    flat.sort(key=lambda p: (-p.name.gpu, -p.name.compute))
    return flat


def distinct_orderings(items: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every distinct permutation, in the order of mig-parted's `iteratePermutationsUntilSuccess` (swap recursion,
    skipping a swap with an element equal to one already swapped into this position)."""
    work = list(items)

    def iterate(i: int) -> Iterator[tuple[int, ...]]:
        if i >= len(work):
            yield tuple(work)
            return
        for j in range(i, len(work)):
            if work[j] in work[i:j]:
                continue
            work[i], work[j] = work[j], work[i]
            yield from iterate(i + 1)
            work[i], work[j] = work[j], work[i]

    return iterate(0)


@dataclass(frozen=True)
class MigPartedRun:
    """What mig-parted's apply would do to one GPU: orderings tried, GI creation calls made, and the outcome."""

    succeeded: bool
    orderings: int
    gi_creations: int
    first_ordering_ok: bool
    placements: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "succeeded": self.succeeded,
            "orderings": self.orderings,
            "gi_creations": self.gi_creations,
        }
        if self.placements:
            out["placements"] = list(self.placements)
        return out


def simulate_mig_parted(table: ProfileTable, request: Mapping[str, int], driver: DriverModel) -> MigPartedRun:
    """Try every distinct ordering of the flattened request on a freshly cleared simulated GPU until one succeeds."""
    flat = flatten_request(table, request)
    profiles = table.gpu_instance_profiles
    index = {p.name: i for i, p in enumerate(profiles)}
    orderings = 0
    creations = 0
    first_ok = False
    for ordering in distinct_orderings([index[p.name] for p in flat]):
        orderings += 1
        gpu = DriverGpu(table, driver)
        ok = True
        for i in ordering:
            creations += 1
            if gpu.create(profiles[i]) is None:
                ok = False
                break
        if orderings == 1:
            first_ok = ok
        if ok:
            placed = tuple(f"{p.name}@{at}" for p, at in gpu.created)
            return MigPartedRun(True, orderings, creations, first_ok, placed)
    return MigPartedRun(False, orderings, creations, first_ok)


# ---------------------------------------------------------------------------------------------------------------------
# Exact search and an independent brute force


def exact_outcome(table: ProfileTable, request: Mapping[str, int]) -> tuple[str, int]:
    """The planner's verdict and its `attempts`: ('fits'|'does-not-fit'|'too-many'|'exclusive', attempts)."""
    try:
        result = plan(table, request)
    except DoesNotFitError as exc:
        return "does-not-fit", exc.attempts
    except TooManyError:
        return "too-many", 0
    except ExclusiveProfileError:
        return "exclusive", 0
    return "fits", result.attempts


def exceeds_totals(table: ProfileTable, request: Mapping[str, int]) -> bool:
    """Whether the request needs more compute or memory slices in total than the GPU has (no search needed)."""
    flat = flatten_request(table, request)
    compute = sum(p.slices for p in flat)
    memory = sum(p.placements[0].size for p in flat)
    return compute > table.compute_slices or memory > table.memory_slices


def brute_force_fits(table: ProfileTable, counts: Sequence[int]) -> bool:
    """Whether GPU instances with these per-profile counts (table order) fit, by trying every placement assignment."""
    profiles = table.gpu_instance_profiles
    items: list[GpuInstanceProfile] = []
    for profile, count in zip(profiles, counts, strict=True):
        if count > profile.max_count:
            return False
        items.extend([profile] * count)
    if sum(p.slices for p in items) > table.compute_slices:
        return False
    present = {p.name for p in items}
    for p in items:
        if p.coexists_only_with is not None and present - p.coexists_only_with - {p.name}:
            return False

    def place(i: int, occupied: int, lowest: int) -> bool:
        if i == len(items):
            return True
        options = items[i].placements
        for k in range(lowest, len(options)):
            mask = ((1 << options[k].size) - 1) << options[k].start
            if occupied & mask:
                continue
            same_next = i + 1 < len(items) and items[i + 1] is items[i]
            if place(i + 1, occupied | mask, k + 1 if same_next else 0):
                return True
        return False

    return place(0, 0, 0)


# ---------------------------------------------------------------------------------------------------------------------
# Maximal geometries


@dataclass
class Geometries:
    """Every feasible per-profile count vector of one model (table order), and how `plan` and brute force agreed."""

    table: ProfileTable
    feasible: set[tuple[int, ...]]
    checked: int
    disagreements: list[dict[str, Any]]

    def maximal(self, allowed: Sequence[bool]) -> list[tuple[int, ...]]:
        """Feasible vectors using only allowed profiles to which no allowed profile can be added."""
        out = []
        for vector in self.feasible:
            if any(c and not ok for c, ok in zip(vector, allowed, strict=True)):
                continue
            grown = (
                tuple(c + (1 if j == i else 0) for j, c in enumerate(vector)) for i in range(len(vector)) if allowed[i]
            )
            if not any(g in self.feasible for g in grown):
                out.append(vector)
        return sorted(out, reverse=True)


def request_of(table: ProfileTable, vector: Sequence[int]) -> dict[str, int]:
    return {str(p.name): c for p, c in zip(table.gpu_instance_profiles, vector, strict=True) if c}


def enumerate_geometries(table: ProfileTable) -> Geometries:
    """All feasible count vectors, by depth-first search over profiles; feasibility is downward closed, so a count
    that does not fit ends that branch. Every vector looked at is judged by `plan` and by `brute_force_fits`."""
    profiles = table.gpu_instance_profiles
    feasible: set[tuple[int, ...]] = set()
    disagreements: list[dict[str, Any]] = []
    checked = 0

    def judge(vector: tuple[int, ...]) -> bool:
        nonlocal checked
        checked += 1
        verdict, _ = exact_outcome(table, request_of(table, vector))
        fits = verdict == "fits"
        if fits != brute_force_fits(table, vector):
            disagreements.append({"request": request_of(table, vector), "plan": verdict, "brute_force": not fits})
        return fits

    def walk(i: int, prefix: tuple[int, ...]) -> None:
        if i == len(profiles):
            return
        zeros = (0,) * (len(profiles) - i - 1)
        walk(i + 1, (*prefix, 0))
        for count in range(1, profiles[i].max_count + 2):  # one past the max: plan must reject it
            vector = (*prefix, count, *zeros)
            if not judge(vector):
                break
            feasible.add(vector)
            walk(i + 1, (*prefix, count))

    feasible.add((0,) * len(profiles))
    walk(0, ())
    return Geometries(table, feasible, checked, disagreements)


def placement_maximal(table: ProfileTable, allowed: Sequence[bool]) -> tuple[int, int]:
    """Placement-level count, the notion behind mig-facts 4.4: arrangements (profile at placement) of allowed profiles
    to which no allowed instance can be added at a free placement, and how many distinct multisets they make.

    A multiset can have such an arrangement without being maximal as a multiset: 3g at 0:4 with 1g at 4, 5 and 6
    admits nothing more, yet 3g at 4:4 leaves room for a fourth 1g.
    """
    profiles = table.gpu_instance_profiles
    candidates = [(i, pl) for i, p in enumerate(profiles) if allowed[i] for pl in p.placements]
    masks = [((1 << pl.size) - 1) << pl.start for _, pl in candidates]
    counts = [0] * len(profiles)
    arrangements = 0
    multisets: set[tuple[int, ...]] = set()

    def addable(k: int, occupied: int) -> bool:
        i = candidates[k][0]
        profile = profiles[i]
        if occupied & masks[k] or counts[i] >= profile.max_count:
            return False
        if sum(p.slices * c for p, c in zip(profiles, counts, strict=True)) + profile.slices > table.compute_slices:
            return False
        for j, c in enumerate(counts):
            other = profiles[j]
            if not c or j == i:
                continue
            if profile.coexists_only_with is not None and other.name not in profile.coexists_only_with:
                return False
            if other.coexists_only_with is not None and profile.name not in other.coexists_only_with:
                return False
        return True

    def walk(k: int, occupied: int) -> None:
        nonlocal arrangements
        if k == len(candidates):
            if not any(addable(c, occupied) for c in range(len(candidates))):
                arrangements += 1
                multisets.add(tuple(counts))
            return
        walk(k + 1, occupied)
        if addable(k, occupied):
            counts[candidates[k][0]] += 1
            walk(k + 1, occupied | masks[k])
            counts[candidates[k][0]] -= 1

    walk(0, 0)
    return arrangements, len(multisets)


def within_totals(table: ProfileTable) -> dict[str, Any]:
    """Every count vector within max counts whose compute and memory totals fit the GPU, judged by `plan`.

    `placement_conflicts` counts those that still do not fit: requests only a placement search can reject.
    """
    profiles = table.gpu_instance_profiles
    verdicts: dict[str, int] = {}
    conflicts: list[dict[str, int]] = []

    def walk(i: int, counts: tuple[int, ...], compute: int, memory: int) -> None:
        if i == len(profiles):
            request = request_of(table, counts)
            verdict = exact_outcome(table, request)[0]
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            if verdict == "does-not-fit":
                conflicts.append(request)
            return
        p = profiles[i]
        for c in range(p.max_count + 1):
            if compute + c * p.slices > table.compute_slices or memory + c * p.placements[0].size > table.memory_slices:
                break
            walk(i + 1, (*counts, c), compute + c * p.slices, memory + c * p.placements[0].size)

    walk(0, (), 0, 0)
    return {
        "vectors": sum(verdicts.values()),
        "verdicts": verdicts,
        "placement_conflicts": len(conflicts),
        "conflict_examples": conflicts[:EXAMPLES_KEPT],
    }


def is_double_memory_1g(table: ProfileTable, profile: GpuInstanceProfile) -> bool:
    smallest = min(p.placements[0].size for p in table.gpu_instance_profiles if p.slices == 1)
    return profile.slices == 1 and profile.placements[0].size > smallest


# name -> whether a profile takes part; mig-facts 4.4 counted over attribute-free profiles plus +me.
VARIANTS: Mapping[str, Callable[[ProfileTable, GpuInstanceProfile], bool]] = {
    "all_profiles": lambda t, p: True,
    "no_double_memory_1g": lambda t, p: not is_double_memory_1g(t, p),
    "attribute_free": lambda t, p: not p.name.attributes,
    "attribute_free_no_double_memory_1g": lambda t, p: not p.name.attributes and not is_double_memory_1g(t, p),
    "attribute_free_plus_me": lambda t, p: p.name.attributes in ((), ("me",)) and not p.name.negative,
    "attribute_free_plus_me_no_double_memory_1g": lambda t, p: (
        p.name.attributes in ((), ("me",)) and not p.name.negative and not is_double_memory_1g(t, p)
    ),
}


def geometry_family(table: ProfileTable) -> tuple[Any, ...]:
    """What the placement problem depends on, names aside: models with equal families have equal answers."""
    rank = {p.name: i for i, p in enumerate(table.gpu_instance_profiles)}
    return (
        table.compute_slices,
        table.memory_slices,
        tuple(
            (
                p.slices,
                p.max_count,
                p.placements,
                p.name.attributes,
                p.name.negative,
                None if p.coexists_only_with is None else tuple(sorted(rank[n] for n in p.coexists_only_with)),
            )
            for p in table.gpu_instance_profiles
        ),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Requests


# Hand-picked infeasible requests per geometry family; each must be rejected by the planner.
CURATED: tuple[tuple[str, dict[str, int]], ...] = (
    ("H100-SXM5-80GB", {"2g.20gb": 3, "1g.10gb": 2}),
    ("H100-SXM5-80GB", {"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}),
    ("H100-SXM5-80GB", {"3g.40gb": 2, "1g.20gb": 1}),
    ("H100-SXM5-80GB", {"3g.40gb": 1, "2g.20gb": 2, "1g.10gb": 1}),
    ("H100-SXM5-80GB", {"1g.20gb": 4, "1g.10gb": 1}),
    ("H100-SXM5-80GB", {"4g.40gb": 1, "2g.20gb": 2}),
    ("H100-SXM5-80GB", {"7g.80gb": 1, "1g.10gb": 1}),
    ("H100-SXM5-80GB", {"2g.20gb": 2, "1g.20gb": 2, "1g.10gb": 1}),
    ("H100-SXM5-80GB", {"3g.40gb": 1, "1g.10gb": 4, "1g.10gb+me": 1}),
    ("A100-SXM4-40GB", {"3g.20gb": 1, "2g.10gb": 2, "1g.5gb": 1}),
    ("A100-SXM4-40GB", {"1g.10gb": 1, "1g.5gb": 6, "1g.5gb+me": 1}),
    ("A30-PCIE-24GB", {"2g.12gb": 2, "1g.6gb": 1}),
    ("A30-PCIE-24GB", {"4g.24gb": 1, "1g.6gb": 1}),
    ("A30-PCIE-24GB", {"2g.12gb": 1, "2g.12gb+me": 1, "1g.6gb": 1}),
    ("A30-PCIE-24GB", {"2g.12gb": 1, "1g.6gb": 2, "1g.6gb+me": 1}),
    ("RTX-PRO-6000-BLACKWELL", {"2g.48gb": 2, "1g.24gb": 1}),
    ("RTX-PRO-6000-BLACKWELL", {"4g.96gb": 1, "1g.24gb": 1}),
    ("RTX-PRO-6000-BLACKWELL", {"2g.48gb": 1, "2g.48gb+gfx": 1, "1g.24gb": 1}),
    ("RTX-PRO-6000-BLACKWELL", {"1g.24gb": 3, "1g.24gb+gfx": 2}),
    # rejected before the search (counts, exclusive profiles)
    ("H100-SXM5-80GB", {"3g.40gb": 3}),
    ("H100-SXM5-80GB", {"1g.10gb+me": 2, "1g.10gb": 1}),
    ("H100-SXM5-80GB", {"1g.10gb": 8}),
    ("A30-PCIE-24GB", {"2g.12gb": 3}),
    ("RTX-PRO-6000-BLACKWELL", {"1g.24gb+me.all": 1, "1g.24gb": 1}),
)


def random_infeasible(models: Sequence[GpuModel], seed: int, wanted: int) -> list[tuple[str, dict[str, int]]]:
    """`wanted` distinct random small requests that the planner rejects: 1 to 3 distinct profiles of a random model,
    each at 1 to its max count (capped at 4); one in RANDOM_OVER_MAX asks one profile for its max count plus one.
    At most RANDOM_MAX_INSTANCES instances."""
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, int]]] = []
    seen: set[tuple[str, tuple[tuple[str, int], ...]]] = set()
    while len(out) < wanted:
        model = rng.choice(models)
        profiles = rng.sample(model.table.gpu_instance_profiles, rng.randint(1, RANDOM_MAX_PROFILES))
        request = {str(p.name): rng.randint(1, min(p.max_count, 4)) for p in profiles}
        if rng.random() < 1 / RANDOM_OVER_MAX:
            over = rng.choice(profiles)
            request[str(over.name)] = over.max_count + 1
        key = (model.key, tuple(sorted(request.items())))
        if sum(request.values()) > RANDOM_MAX_INSTANCES or key in seen:
            continue
        seen.add(key)
        if exact_outcome(model.table, request)[0] != "fits":
            out.append((model.key, request))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The three parts


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }


def time_plan_node(models: Sequence[GpuModel]) -> list[dict[str, Any]]:
    spec = generate_config(device_types_of_models(models), force_filters=True)
    names = list(spec.mig_configs)
    rows = []
    for model in models:
        node = [NodeGpu(i, model.pci_id, model.table, model.product_name) for i in range(GPUS_PER_NODE)]
        planned = 0
        errors: list[str] = []
        for name in names:  # warm-up, and check that the default config fits its own models
            result = plan_node(spec, name, node)
            planned += sum(1 for g in result.gpus if g.plan is not None)
            errors.extend(f"{name}: {g.error}" for g in result.gpus if g.error is not None)
        totals: list[float] = []
        per_config: dict[str, list[float]] = {n: [] for n in names}
        started = time.perf_counter()
        while len(totals) < TIMING_MAX_REPEATS and (
            len(totals) < TIMING_MIN_REPEATS or time.perf_counter() - started < TIMING_MIN_SECONDS
        ):
            total = 0.0
            for name in names:
                t0 = time.perf_counter()
                plan_node(spec, name, node)
                elapsed = time.perf_counter() - t0
                per_config[name].append(elapsed)
                total += elapsed
            totals.append(total)
        slowest = max(names, key=lambda n: statistics.median(per_config[n]))
        median_ms = statistics.median(totals) * 1000
        rows.append(
            {
                "model": model.key,
                "configs": len(names),
                "gpu_plans_per_pass": planned,
                "gpu_errors": errors,
                "repeats": len(totals),
                "median_ms": round(median_ms, 3),
                "min_ms": round(min(totals) * 1000, 3),
                "max_ms": round(max(totals) * 1000, 3),
                "slowest_config": slowest,
                "slowest_config_median_ms": round(statistics.median(per_config[slowest]) * 1000, 3),
                "meets_target": median_ms < TARGET_MS_PER_MODEL and not errors,
            }
        )
    return rows


def count_geometries(models: Sequence[GpuModel]) -> tuple[list[dict[str, Any]], dict[tuple[Any, ...], Geometries]]:
    rows = []
    by_family: dict[tuple[Any, ...], Geometries] = {}
    for model in models:
        table = model.table
        t0 = time.perf_counter()
        geometries = enumerate_geometries(table)
        elapsed = time.perf_counter() - t0
        by_family.setdefault(geometry_family(table), geometries)
        counts = {}
        by_placement = {}
        for variant, keep in VARIANTS.items():
            allowed = [keep(table, p) for p in table.gpu_instance_profiles]
            counts[variant] = len(geometries.maximal(allowed))
            arrangements, multisets = placement_maximal(table, allowed)
            by_placement[variant] = {"arrangements": arrangements, "distinct_multisets": multisets}
        everything = [True] * len(table.gpu_instance_profiles)
        rows.append(
            {
                "model": model.key,
                "profiles": [str(p.name) for p in table.gpu_instance_profiles],
                "feasible_geometries": len(geometries.feasible) - 1,  # the empty GPU left out
                "maximal": counts,
                "placement_maximal": by_placement,
                "maximal_geometries": [
                    " + ".join(f"{c}x{n}" for n, c in request_of(table, v).items())
                    for v in geometries.maximal(everything)
                ],
                "vectors_checked": geometries.checked,
                "within_totals": within_totals(table),
                "plan_vs_brute_force_disagreements": geometries.disagreements,
                "enumeration_s": round(elapsed, 3),
            }
        )
    return rows, by_family


def geomean(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregates over requests: exact attempts, mig-parted creations and ratios per driver model."""
    searched = [r for r in rows if r["exact"]["outcome"] == "does-not-fit"]
    rejected = [r for r in rows if r["exact"]["outcome"] in ("too-many", "exclusive")]
    out: dict[str, Any] = {
        "searched": len(searched),
        "rejected_before_search": len(rejected),
        "exact_attempts": {
            "geomean": _round(geomean([r["exact"]["attempts"] for r in searched])),
            "max": max((r["exact"]["attempts"] for r in searched), default=None),
        },
        "searched_though_totals_exceeded": sum(1 for r in searched if r["exceeds_totals"]),
        "exact_attempts_spent_on_those": sum(r["exact"]["attempts"] for r in searched if r["exceeds_totals"]),
        "exact_attempts_total": sum(r["exact"]["attempts"] for r in searched),
    }
    for driver in DRIVER_MODELS:
        ratios = [r["ratio"][driver] for r in searched]
        creations = [r["mig_parted"][driver]["gi_creations"] for r in searched]
        out[driver] = {
            "gi_creations_geomean": _round(geomean(creations)),
            "gi_creations_max": max(creations, default=None),
            "orderings_max": max((r["mig_parted"][driver]["orderings"] for r in searched), default=None),
            "ratio_geomean": _round(geomean(ratios)),
            "ratio_min": _round(min(ratios, default=math.nan)),
            "ratio_max": _round(max(ratios, default=math.nan)),
            "rejected_before_search_gi_creations_max": max(
                (r["mig_parted"][driver]["gi_creations"] for r in rejected), default=None
            ),
            "mig_parted_succeeds_on_infeasible": sum(1 for r in rows if r["mig_parted"][driver]["succeeded"]),
        }
    return out


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)


def compare_attempts(
    models: Mapping[str, GpuModel], requests: Sequence[tuple[str, str, dict[str, int]]]
) -> list[dict[str, Any]]:
    rows = []
    for source, key, request in requests:
        table = models[key].table
        outcome, attempts = exact_outcome(table, request)
        runs = {name: simulate_mig_parted(table, request, driver) for name, driver in DRIVER_MODELS.items()}
        rows.append(
            {
                "source": source,
                "model": key,
                "request": request,
                "exact": {"outcome": outcome, "attempts": attempts},
                "exceeds_totals": exceeds_totals(table, request),
                "mig_parted": {name: run.as_json() for name, run in runs.items()},
                "ratio": {
                    name: _round(run.gi_creations / attempts) if attempts else None for name, run in runs.items()
                },
            }
        )
    return rows


def order_sensitivity(families: Mapping[tuple[Any, ...], Geometries]) -> list[dict[str, Any]]:
    """For every feasible geometry of each family: does mig-parted's first ordering succeed under each driver model,
    and if not, how many orderings and GI creations until one does (or do all fail)?"""
    out = []
    for geometries in families.values():
        table = geometries.table
        row: dict[str, Any] = {"family_of": table.model, "feasible_geometries": len(geometries.feasible) - 1}
        for name, driver in DRIVER_MODELS.items():
            later: list[dict[str, Any]] = []
            never: list[dict[str, Any]] = []
            for vector in sorted(geometries.feasible, reverse=True):
                request = request_of(table, vector)
                if not request:
                    continue
                run = simulate_mig_parted(table, request, driver)
                if run.first_ordering_ok:
                    continue
                entry = {"request": request, **run.as_json()}
                (later if run.succeeded else never).append(entry)
            later.sort(key=lambda e: -e["gi_creations"])
            row[name] = {
                "first_ordering_fails": len(later) + len(never),
                "later_ordering_succeeds": len(later),
                "all_orderings_fail": len(never),
                "max_orderings_until_success": max((e["orderings"] for e in later), default=0),
                "examples_later": later[:EXAMPLES_KEPT],
                "examples_never": never[:EXAMPLES_KEPT],
            }
        out.append(row)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-o", "--output", type=Path, default=RESULT_PATH, help="where to write the JSON result")
    args = parser.parse_args(argv)

    started_at = datetime.now(UTC)
    t_start = time.perf_counter()
    catalog_models = default_catalog().models
    models = {m.key: m for m in catalog_models}

    timing = time_plan_node(catalog_models)
    geometry_rows, families = count_geometries(catalog_models)
    observations = check_observations(models)

    curated = [("curated", key, request) for key, request in CURATED]
    for _, key, request in curated:
        verdict = exact_outcome(models[key].table, request)[0]
        if verdict == "fits":
            raise SystemExit(f"curated request {request} on {key} fits; it was meant to be infeasible")
    drawn = random_infeasible(catalog_models, RANDOM_SEED, RANDOM_REQUESTS)
    randoms = [("random", key, request) for key, request in drawn]
    attempt_rows = compare_attempts(models, curated + randoms)
    sensitivity = order_sensitivity(families)

    by_family: dict[str, list[str]] = {}
    for model in catalog_models:
        first = next(g.table.model for f, g in families.items() if f == geometry_family(model.table))
        by_family.setdefault(first, []).append(model.key)

    result = {
        "bench": "planner",
        "issue": 2,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": "",
        "duration_s": 0.0,
        "machine": machine_info(),
        "parameters": {
            "gpus_per_node": GPUS_PER_NODE,
            "target_ms_per_model": TARGET_MS_PER_MODEL,
            "timing_min_repeats": TIMING_MIN_REPEATS,
            "timing_max_repeats": TIMING_MAX_REPEATS,
            "timing_min_seconds": TIMING_MIN_SECONDS,
            "random_seed": RANDOM_SEED,
            "random_requests": RANDOM_REQUESTS,
            "random_max_profiles": RANDOM_MAX_PROFILES,
            "random_max_instances": RANDOM_MAX_INSTANCES,
            "random_over_max_one_in": RANDOM_OVER_MAX,
            "driver_models": dict(DRIVER_DESCRIPTIONS),
            "driver_common": DRIVER_COMMON,
            "ratio": "mig-parted GI creation calls / exact-search placement attempts (offline checks)",
        },
        "geometry_families": by_family,
        "plan_node_timing": {
            "target_ms_per_model": TARGET_MS_PER_MODEL,
            "all_meet_target": all(r["meets_target"] for r in timing),
            "models": timing,
        },
        "maximal_geometries": {
            "variants": {
                "all_profiles": "every GPU-instance profile of the model, attributes included",
                "no_double_memory_1g": "without the double-memory 1g profile (1g.20gb on 80 GB parts)",
                "attribute_free": "profiles without attributes only",
                "attribute_free_no_double_memory_1g": "attribute-free, without the double-memory 1g",
                "attribute_free_plus_me": "attribute-free plus +me (the profile set of mig-facts 4.4)",
                "attribute_free_plus_me_no_double_memory_1g": "the same without the double-memory 1g",
            },
            "models": geometry_rows,
        },
        "driver_observations": observations,
        "infeasible_requests": {
            "summary": {
                "curated": summarise([r for r in attempt_rows if r["source"] == "curated"]),
                "random": summarise([r for r in attempt_rows if r["source"] == "random"]),
                "all": summarise(attempt_rows),
            },
            "requests": attempt_rows,
        },
        "order_sensitive_feasible": sensitivity,
    }
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["duration_s"] = round(time.perf_counter() - t_start, 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print_summary(result, args.output)
    return 0


def print_summary(result: Mapping[str, Any], path: Path) -> None:
    timing = result["plan_node_timing"]
    print(f"plan_node, every default config on {GPUS_PER_NODE} GPUs (target < {TARGET_MS_PER_MODEL:.0f} ms per model):")
    for r in timing["models"]:
        mark = "ok" if r["meets_target"] else "MISSED"
        print(
            f"  {r['model']:<24} {r['configs']:>3} configs  median {r['median_ms']:7.2f} ms  "
            f"max {r['max_ms']:7.2f} ms  {mark}"
        )
    print(
        "maximal geometries as multisets: all profiles / without double-memory 1g / attribute-free / attribute-free "
        "without double-memory 1g; [placement-level, mig-facts 4.4: attribute-free / without double-memory 1g]:"
    )
    for r in result["maximal_geometries"]["models"]:
        m = r["maximal"]
        pm = r["placement_maximal"]
        print(
            f"  {r['model']:<24} {m['all_profiles']:>3} {m['no_double_memory_1g']:>3} {m['attribute_free']:>3} "
            f"{m['attribute_free_no_double_memory_1g']:>3}  [{pm['attribute_free']['distinct_multisets']:>2} "
            f"{pm['attribute_free_no_double_memory_1g']['distinct_multisets']:>2}]  feasible "
            f"{r['feasible_geometries']:>3}; plan vs brute force disagree {len(r['plan_vs_brute_force_disagreements'])}"
            f"; within totals yet rejected {r['within_totals']['placement_conflicts']}"
        )
    obs = result["driver_observations"]
    print(
        "driver models vs observed placements: " + ", ".join(f"{k} {v['reproduced']}/{v['of']}" for k, v in obs.items())
    )
    summary = result["infeasible_requests"]["summary"]
    print("infeasible requests: exact-search attempts vs mig-parted GI creation calls (ratio = mig-parted / exact):")
    for source, s in summary.items():
        parts = [f"  {source:<8} searched {s['searched']:>3}, exact geomean {s['exact_attempts']['geomean']}"]
        for driver in DRIVER_MODELS:
            d = s[driver]
            parts.append(
                f"{driver}: ratio geomean {d['ratio_geomean']} max {d['ratio_max']} "
                f"(creations max {d['gi_creations_max']})"
            )
        print("; ".join(parts))
        print(
            f"  {'':<8} rejected before search {s['rejected_before_search']:>3} (exact 0); mig-parted creations max "
            + ", ".join(f"{d} {s[d]['rejected_before_search_gi_creations_max']}" for d in DRIVER_MODELS)
        )
    print("feasible geometries where mig-parted's first ordering fails:")
    for row in result["order_sensitive_feasible"]:
        print(
            f"  family of {row['family_of']:<22} "
            + ", ".join(
                f"{d}: {row[d]['first_ordering_fails']} of {row['feasible_geometries']} "
                f"({row[d]['all_orderings_fail']} never succeed)"
                for d in DRIVER_MODELS
            )
        )
    print(f"wrote {path} in {result['duration_s']} s")


if __name__ == "__main__":
    sys.exit(main())
