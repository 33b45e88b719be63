"""Placement planning: prove a MIG geometry fits a GPU, with explicit placements, or say exactly why not.

NVIDIA's mig-parted lets the driver place instances and retries every ordering on the hardware. Here the search runs
offline over the GPU's profile table: names are resolved per model, max counts and exclusive profiles enforced,
compute-instance profiles packed into the fewest GPU instances, and GPU instances placed by an exact backtracking
search. The same request always gives the same placements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .catalog import ComputeInstanceProfile, GpuInstanceProfile, GpuModel, Placement, ProfileTable
from .errors import PlanError
from .spec import MigConfigEntry, MigPartedSpec, PciId, ProfileName, parse_profile_name, select_config

# ---------------------------------------------------------------------------------------------------------------------
# Errors


class UnknownProfileError(PlanError):
    """A requested name is not a profile of this GPU model."""


class TooManyError(PlanError):
    """A profile is requested more often than the GPU allows."""


class ExclusiveProfileError(PlanError):
    """Two requested profiles cannot coexist on one GPU."""


class DoesNotFitError(PlanError):
    """No placement of the requested instances exists."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class NotMigCapableError(PlanError):
    """MIG was requested on a GPU that does not support it."""


# ---------------------------------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class ComputeInstancePlan:
    """One compute instance inside a planned GPU instance; `start` counts compute slices within the GI."""

    name: ProfileName
    profile: ComputeInstanceProfile
    start: int

    @property
    def placement(self) -> Placement:
        return Placement(self.start, self.profile.slices)


@dataclass(frozen=True)
class GpuInstancePlan:
    profile: GpuInstanceProfile
    placement: Placement
    compute_instances: tuple[ComputeInstancePlan, ...]


@dataclass(frozen=True)
class GpuPlan:
    """The instances to create on one GPU, each at an explicit placement."""

    model: str
    instances: tuple[GpuInstancePlan, ...]
    attempts: int = 0

    def devices(self) -> dict[str, int]:
        """Canonical name -> count of compute instances: what `assert` compares with the hardware."""
        counts: dict[str, int] = {}
        for gi in self.instances:
            for ci in gi.compute_instances:
                counts[str(ci.name)] = counts.get(str(ci.name), 0) + 1
        return counts


# ---------------------------------------------------------------------------------------------------------------------
# Resolution and packing


@dataclass(frozen=True)
class _Request:
    name: ProfileName
    gi: GpuInstanceProfile
    ci: ComputeInstanceProfile
    count: int


def _describe(table: ProfileTable) -> str:
    return table.model


def _resolve(table: ProfileTable, request: Mapping[str, int] | Mapping[ProfileName, int]) -> list[_Request]:
    resolved: dict[ProfileName, int] = {}
    for key, count in request.items():
        name = key if isinstance(key, ProfileName) else parse_profile_name(key)
        if count < 0:
            raise PlanError(f"count for {name} must not be negative, got {count}")
        if count:
            resolved[name] = resolved.get(name, 0) + count
    out: list[_Request] = []
    unknown: list[str] = []
    for name, count in sorted(resolved.items(), key=lambda kv: _order_key(kv[0])):
        gi = table.gi_profile(name)
        if gi is None:
            close = table.closest_names(str(name))
            unknown.append(f"{name}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
            continue
        ci = table.ci_profile(name)
        if ci is None:
            inside = [
                str(ProfileName(c, gi.name.gpu, gi.name.memory_gb, gi.name.attributes, gi.name.negative))
                for c in sorted(table.compute_instance_profiles.get(gi.slices, {}))
            ]
            raise UnknownProfileError(
                f"compute-instance profile {name} is not available inside a {gi.name} GPU instance on "
                f"{_describe(table)}; valid: {', '.join(inside)}"
            )
        out.append(_Request(name, gi, ci, count))
    if unknown:
        what = f"profile {unknown[0]} is" if len(unknown) == 1 else f"profiles {', '.join(unknown)} are"
        raise UnknownProfileError(
            f"{what} not available on {_describe(table)}; valid names: {', '.join(table.valid_names())}"
        )
    return out


def _order_key(name: ProfileName) -> tuple[int, int, int, tuple[str, ...], bool]:
    return (-name.gpu, -name.compute, -name.memory_gb, name.attributes, name.negative)


def _pack(gi: GpuInstanceProfile, requests: Sequence[_Request], model: str) -> list[list[_Request]]:
    """Pack compute instances into the fewest GPU instances of one profile (exact, the inputs are tiny).

    A GI holds compute instances whose slices sum to at most its own, each CI profile at most its max count.
    Fewer GIs never hurt placement: every GI of a profile occupies the same memory slices.
    """
    items: list[_Request] = []
    for r in sorted(requests, key=lambda r: -r.ci.slices):
        items.extend([r] * r.count)
    capacity = gi.slices
    total = sum(r.ci.slices for r in items)
    lower = -(-total // capacity)
    if lower > gi.max_count and all(r.ci.slices == capacity for r in requests):
        raise TooManyError(f"requested {len(items)} x {gi.name} but {model} allows at most {gi.max_count}")
    if lower > gi.max_count:
        raise TooManyError(
            f"{', '.join(f'{r.count} x {r.name}' for r in requests)} need at least {lower} {gi.name} GPU instances "
            f"but {model} allows at most {gi.max_count}"
        )
    for bins in range(lower, min(len(items), gi.max_count) + 1):
        assignment = _fill(items, capacity, bins)
        if assignment is not None:
            return assignment
    raise TooManyError(
        f"{', '.join(f'{r.count} x {r.name}' for r in requests)} do not fit into at most {gi.max_count} "
        f"{gi.name} GPU instances ({capacity} compute slices each)"
    )


def _fill(items: Sequence[_Request], capacity: int, bins: int) -> list[list[_Request]] | None:
    contents: list[list[_Request]] = [[] for _ in range(bins)]
    used = [0] * bins

    def fits(b: int, item: _Request) -> bool:
        if used[b] + item.ci.slices > capacity:
            return False
        same = sum(1 for x in contents[b] if x.ci.slices == item.ci.slices)
        return same < item.ci.max_count

    def place(i: int) -> bool:
        if i == len(items):
            return True
        seen: set[tuple[int, tuple[int, ...]]] = set()
        for b in range(bins):
            state = (used[b], tuple(x.ci.slices for x in contents[b]))
            if state in seen or not fits(b, items[i]):
                continue  # bins in the same state are interchangeable
            seen.add(state)
            contents[b].append(items[i])
            used[b] += items[i].ci.slices
            if place(i + 1):
                return True
            contents[b].pop()
            used[b] -= items[i].ci.slices
        return False

    return [c for c in contents if c] if place(0) else None


def _compute_instances(members: Sequence[_Request]) -> tuple[ComputeInstancePlan, ...]:
    out: list[ComputeInstancePlan] = []
    start = 0
    for r in sorted(members, key=lambda r: (-r.ci.slices, str(r.name))):
        out.append(ComputeInstancePlan(r.name, r.ci, start))
        start += r.ci.slices
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------------
# Placement search


@dataclass
class _Search:
    instances: list[tuple[GpuInstanceProfile, tuple[ComputeInstancePlan, ...]]]
    memory_slices: int
    attempts: int = 0
    best: list[Placement] = field(default_factory=list)
    current: list[Placement] = field(default_factory=list)

    def run(self) -> list[Placement] | None:
        return self._place(0, 0)

    def _place(self, i: int, occupied: int) -> list[Placement] | None:
        if i == len(self.instances):
            return list(self.current)
        profile = self.instances[i][0]
        first = 0
        if i > 0 and self.instances[i - 1][0] is profile:
            first = profile.placements.index(self.current[-1]) + 1  # identical instances: increasing placements
        for placement in profile.placements[first:]:
            self.attempts += 1
            mask = ((1 << placement.size) - 1) << placement.start
            if occupied & mask:
                continue
            self.current.append(placement)
            if len(self.current) > len(self.best):
                self.best = list(self.current)
            found = self._place(i + 1, occupied | mask)
            if found is not None:
                return found
            self.current.pop()
        return None


def format_placements(placements: Sequence[Placement]) -> str:
    """`{0,2,4}:2`, as `nvidia-smi mig -lgipp` prints possible placements of one profile."""
    sizes = {p.size for p in placements}
    if len(sizes) == 1:
        return "{" + ",".join(str(p.start) for p in placements) + "}:" + str(sizes.pop())
    return ", ".join(str(p) for p in placements)


def _explain(search: _Search, table: ProfileTable) -> str:
    stuck = len(search.best)
    profile = search.instances[stuck][0]
    nth = sum(1 for gi, _ in search.instances[: stuck + 1] if gi is profile)
    total = sum(1 for gi, _ in search.instances if gi is profile)
    held = list(zip((gi for gi, _ in search.instances[:stuck]), search.best, strict=True))
    reasons = []
    for gi, p in held:
        blocked = [c for c in profile.placements if c.overlaps(p)]
        if blocked:
            slices = f"slice {p.start}" if p.size == 1 else f"slices {p.start}-{p.end - 1}"
            reasons.append(f"{gi.name} at {p} holds {slices} (placements {format_placements(blocked)})")
    closest = ", ".join(f"{gi.name} at {p}" for gi, p in held) or "nothing placed"
    return (
        f"{profile.name} (instance {nth} of {total}) cannot be placed on {_describe(table)}: it needs one of the "
        f"memory-slice placements {format_placements(profile.placements)} and no arrangement of the other "
        f"instances leaves one free. In the closest arrangement ({closest}): {'; '.join(reasons) or 'none is free'}."
    )


def plan(table: ProfileTable, request: Mapping[str, int] | Mapping[ProfileName, int]) -> GpuPlan:
    """Plan the instances of one GPU with MIG enabled; `{}` plans an empty GPU.

    Raises UnknownProfileError, TooManyError, ExclusiveProfileError or DoesNotFitError with a message naming the
    profile, the GPU model and what would be valid.
    """
    requests = _resolve(table, request)
    by_gi: dict[ProfileName, list[_Request]] = {}
    for r in requests:
        by_gi.setdefault(r.gi.name, []).append(r)
    instances: list[tuple[GpuInstanceProfile, tuple[ComputeInstancePlan, ...]]] = []
    for group in by_gi.values():
        gi = group[0].gi
        packed = _pack(gi, group, _describe(table))
        instances.extend((gi, _compute_instances(members)) for members in packed)
    _check_exclusive(table, [gi for gi, _ in instances])
    instances.sort(key=lambda x: (-x[0].placements[0].size, -x[0].slices, _order_key(x[0].name)))
    search = _Search(instances, table.memory_slices)
    placements = search.run()
    totals = _totals(table, [gi for gi, _ in instances])
    if placements is None:
        raise DoesNotFitError(" ".join([_explain(search, table), *totals]), attempts=search.attempts)
    if totals:  # placements fit yet compute slices are overcommitted: a device table that does not encode it
        raise DoesNotFitError(" ".join(totals), attempts=search.attempts)
    planned = [GpuInstancePlan(gi, p, cis) for (gi, cis), p in zip(instances, placements, strict=True)]
    planned.sort(key=lambda x: x.placement)
    return GpuPlan(model=table.model, instances=tuple(planned), attempts=search.attempts)


def _check_exclusive(table: ProfileTable, gis: Sequence[GpuInstanceProfile]) -> None:
    names = {gi.name for gi in gis}
    for gi in gis:
        if gi.coexists_only_with is None:
            continue
        others = sorted(str(n) for n in names - gi.coexists_only_with - {gi.name})
        if others:
            raise ExclusiveProfileError(
                f"{gi.name} takes every media engine of {_describe(table)} and can only be combined with "
                f"{', '.join(sorted(str(n) for n in gi.coexists_only_with))}; remove {', '.join(others)}"
            )


def _totals(table: ProfileTable, gis: Sequence[GpuInstanceProfile]) -> list[str]:
    """Why the request cannot fit in total, beside any placement conflict; empty when the totals fit."""
    notes = []
    compute = sum(gi.slices for gi in gis)
    if compute > table.compute_slices:
        notes.append(
            f"In total the request needs {compute} compute slices; {_describe(table)} has {table.compute_slices}."
        )
    memory = sum(gi.placements[0].size for gi in gis)
    if memory > table.memory_slices:
        notes.append(
            f"In total the request needs {memory} memory slices; {_describe(table)} has {table.memory_slices}."
        )
    return notes


# ---------------------------------------------------------------------------------------------------------------------
# A node: config selection per GPU


@dataclass(frozen=True)
class NodeGpu:
    """A GPU as the node reports it; `table` is None for a GPU that is not MIG-capable."""

    index: int
    pci: PciId
    table: ProfileTable | None
    product_name: str = ""

    def describe(self) -> str:
        model = self.table.model if self.table else (self.product_name or str(self.pci))
        return f"GPU {self.index} ({model})"


@dataclass(frozen=True)
class GpuDesired:
    """What a config asks of one GPU: the selecting entry, and a plan or the reason there is none."""

    gpu: NodeGpu
    entry: int
    mig_enabled: bool
    plan: GpuPlan | None
    error: PlanError | None = None
    also_selected_by: tuple[int, ...] = ()


@dataclass(frozen=True)
class NodePlan:
    config: str
    gpus: tuple[GpuDesired, ...]
    untouched: tuple[NodeGpu, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(g.error is None for g in self.gpus)


def _desired(gpu: NodeGpu, index: int, entry: MigConfigEntry, earlier: tuple[int, ...]) -> GpuDesired | None:
    if gpu.table is None:
        if not entry.mig_enabled or entry.devices == "all":
            return None  # NVIDIA skips non-MIG GPUs that `devices: all` happens to cover
        error = NotMigCapableError(f"{gpu.describe()} is not MIG-capable but entry {index} enables MIG on it")
        return GpuDesired(gpu, index, True, None, error, earlier)
    if not entry.mig_enabled:
        return GpuDesired(gpu, index, False, None, None, earlier)
    try:
        result = plan(gpu.table, entry.desired_devices())
    except PlanError as exc:
        return GpuDesired(gpu, index, True, None, exc, earlier)
    return GpuDesired(gpu, index, True, result, None, earlier)


def plan_node(spec: MigPartedSpec, config: str | None, gpus: Sequence[NodeGpu]) -> NodePlan:
    """Each GPU's desired state under a config, by NVIDIA's `device-filter`/`devices` rules.

    Entries apply in order and a later entry replaces an earlier one's geometry, so the last selecting entry wins;
    GPUs that no entry selects are reported as untouched.
    """
    name, entries = select_config(spec, config)
    desired: list[GpuDesired] = []
    untouched: list[NodeGpu] = []
    notes: list[str] = []
    for gpu in gpus:
        selecting = [i for i, e in enumerate(entries) if e.selects(gpu.index, gpu.pci)]
        if not selecting:
            untouched.append(gpu)
            continue
        last = selecting[-1]
        if len(selecting) > 1:
            notes.append(f"{gpu.describe()} is selected by entries {selecting}; the last one, entry {last}, wins")
        result = _desired(gpu, last, entries[last], tuple(selecting[:-1]))
        if result is None:
            untouched.append(gpu)
            notes.append(f"{gpu.describe()} is not MIG-capable; entry {last} (devices: all) leaves it untouched")
        else:
            desired.append(result)
    return NodePlan(name, tuple(desired), tuple(untouched), tuple(notes))


# ---------------------------------------------------------------------------------------------------------------------
# generate-config


@dataclass(frozen=True)
class DeviceType:
    """One kind of GPU for generate-config: the filter ids it is selected by and its profile table."""

    filters: tuple[str, ...]
    table: ProfileTable


def device_types_of_node(gpus: Iterable[NodeGpu]) -> list[DeviceType]:
    """Distinct MIG-capable device ids of a node (subsystem ids ignored), in order of first appearance."""
    seen: dict[str, DeviceType] = {}
    for gpu in gpus:
        if gpu.table is None:
            continue
        key = str(PciId(gpu.pci.device, gpu.pci.vendor))
        seen.setdefault(key, DeviceType((key,), gpu.table))
    return list(seen.values())


def device_types_of_models(models: Iterable[GpuModel]) -> list[DeviceType]:
    return [DeviceType(tuple(str(p) for p in m.pci_ids), m.table) for m in models]


def _balanced(table: ProfileTable) -> dict[str, int] | None:
    plain = [p for p in table.gpu_instance_profiles if not p.name.attributes]
    recipe = {7: {1: 2, 2: 1, 3: 1}, 4: {1: 2, 2: 1}}.get(table.compute_slices)
    if recipe is None:
        return None
    out: dict[str, int] = {}
    for g, count in recipe.items():
        candidates = [p for p in plain if p.slices == g]
        if not candidates:
            return None
        best = max(candidates, key=lambda p: (p.max_count, -p.memory_mib))
        out[str(best.name)] = count
    return out


def _entry(types: Sequence[DeviceType], filters: bool, enabled: bool, devices: dict[str, int] | None) -> MigConfigEntry:
    ids: tuple[str, ...] | None = tuple(i for t in types for i in t.filters) if filters else None
    return MigConfigEntry(devices="all", mig_enabled=enabled, mig_devices=devices, device_filter=ids)


def _grouped(
    types: Sequence[DeviceType], values: Sequence[dict[str, int] | None]
) -> list[tuple[dict[str, int], list[DeviceType]]]:
    """Device types with an equal value share one entry (filters unioned); None means no entry for that type."""
    groups: list[tuple[dict[str, int], list[DeviceType]]] = []
    for t, v in zip(types, values, strict=True):
        if v is None:
            continue
        for value, members in groups:
            if value == v:
                members.append(t)
                break
        else:
            groups.append((v, [t]))
    return groups


def generate_config(types: Sequence[DeviceType], force_filters: bool = False) -> MigPartedSpec:
    """NVIDIA's generated configs (mig-facts 2.7) for the given device types.

    `all-disabled`, `all-enabled`, `all-<profile>` at the profile's max count (`+` written `.` in the config name)
    and `all-balanced`; device filters only when there is more than one device type, unless forced.
    """
    if not types:
        raise PlanError("no MIG-capable devices: generate-config needs at least one MIG-capable GPU")
    filters = force_filters or len(types) > 1
    configs: dict[str, tuple[MigConfigEntry, ...]] = {
        "all-disabled": (_entry(types, filters, False, None),),
        "all-enabled": (_entry(types, filters, True, {}),),
    }
    names = sorted(
        {p.name for t in types for p in t.table.gpu_instance_profiles},
        key=lambda n: (n.gpu, n.memory_gb, n.attributes, n.negative),
    )
    for name in names:
        per_type: list[dict[str, int] | None] = []
        for t in types:
            profile = t.table.gi_profile(name)
            per_type.append(None if profile is None else {str(name): profile.max_count})
        configs[f"all-{str(name).replace('+', '.')}"] = tuple(
            _entry(group, filters, True, value) for value, group in _grouped(types, per_type)
        )
    balanced = _grouped(types, [_balanced(t.table) for t in types])
    if balanced:
        configs["all-balanced"] = tuple(_entry(group, filters, True, value) for value, group in balanced)
    return MigPartedSpec(version="v1", mig_configs=configs)
