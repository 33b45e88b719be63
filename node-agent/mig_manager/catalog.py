"""GPU models with MIG as data: the offline source of per-GPU profile tables.

The planner works on a `ProfileTable` (names, IDs, placements, max counts). Offline the catalog supplies it; at run
time the device does (see DESIGN.md). The data lives in `data/catalog.yaml` and is validated when loaded, so a typo
in the data is an error naming the model and row, never a wrong plan.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from .errors import CatalogError
from .spec import PciId, ProfileName, parse_profile_name

# NVML GPU_INSTANCE_PROFILE_* constants (nvml.h). The index queries a profile; the ID it reports is what create
# calls take, and the two differ on real GPUs.
GI_PROFILE_CONSTANTS: Mapping[str, int] = {
    "1_SLICE": 0,
    "2_SLICE": 1,
    "3_SLICE": 2,
    "4_SLICE": 3,
    "7_SLICE": 4,
    "8_SLICE": 5,
    "6_SLICE": 6,
    "1_SLICE_REV1": 7,
    "2_SLICE_REV1": 8,
    "1_SLICE_REV2": 9,
    "1_SLICE_GFX": 10,
    "2_SLICE_GFX": 11,
    "4_SLICE_GFX": 12,
    "1_SLICE_NO_ME": 13,
    "2_SLICE_NO_ME": 14,
    "1_SLICE_ALL_ME": 15,
    "2_SLICE_ALL_ME": 16,
    "3_SLICE_GFX": 17,
}

# NVML COMPUTE_INSTANCE_PROFILE_* constants by compute-slice count; also the CI profile ID on real GPUs.
CI_PROFILE_CONSTANTS: Mapping[int, int] = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4, 8: 5, 6: 6}

_PLACEMENTS_RE = re.compile(r"^\{(\d+(?:,\d+)*)\}:(\d+)$")


@dataclass(frozen=True, order=True)
class Placement:
    """A range of memory slices a GPU instance occupies, as `nvidia-smi mig -lgipp` prints it (`start:size`)."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def slices(self) -> range:
        return range(self.start, self.end)

    def overlaps(self, other: Placement) -> bool:
        return self.start < other.end and other.start < self.end

    def __str__(self) -> str:
        return f"{self.start}:{self.size}"


@dataclass(frozen=True)
class Engines:
    """Per-instance engine counts, as NVML's profile info reports them."""

    copy: int = 0
    decoder: int = 0
    encoder: int = 0
    jpeg: int = 0
    ofa: int = 0


@dataclass(frozen=True)
class GpuInstanceProfile:
    """One GPU-instance profile of one GPU model."""

    name: ProfileName
    constant: str
    id: int
    slices: int
    memory_mib: int
    multiprocessors: int
    engines: Engines
    max_count: int
    placements: tuple[Placement, ...]
    coexists_only_with: frozenset[ProfileName] | None = None

    @property
    def nvml_index(self) -> int:
        return GI_PROFILE_CONSTANTS[self.constant]


@dataclass(frozen=True)
class ComputeInstanceProfile:
    """A compute-instance profile inside a GPU instance of `gpu_slices` compute slices."""

    slices: int
    gpu_slices: int
    max_count: int

    @property
    def id(self) -> int:
        return CI_PROFILE_CONSTANTS[self.slices]


@dataclass(frozen=True)
class ProfileTable:
    """Everything the planner needs to know about one GPU: the catalog's offline, or the device's at run time."""

    model: str
    compute_slices: int
    memory_slices: int
    gpu_instance_profiles: tuple[GpuInstanceProfile, ...]
    # GI compute slices -> CI compute slices -> profile
    compute_instance_profiles: Mapping[int, Mapping[int, ComputeInstanceProfile]]

    def gi_profile(self, name: ProfileName) -> GpuInstanceProfile | None:
        """The GI profile with this GI-level name, or None when the GPU has no such profile."""
        gi = name.gi_name()
        for profile in self.gpu_instance_profiles:
            if profile.name == gi:
                return profile
        return None

    def ci_profile(self, name: ProfileName) -> ComputeInstanceProfile | None:
        """The compute-instance profile a name asks for inside its GI (the full-size CI for GI-level names)."""
        return self.compute_instance_profiles.get(name.gpu, {}).get(name.compute)

    def valid_names(self) -> list[str]:
        """Every name this GPU accepts in `mig-devices`: GI profiles, then CI profiles inside them."""
        names = [str(p.name) for p in self.gpu_instance_profiles]
        for p in self.gpu_instance_profiles:
            for c in sorted(self.compute_instance_profiles.get(p.slices, {})):
                if c != p.slices:
                    names.append(str(ProfileName(c, p.name.gpu, p.name.memory_gb, p.name.attributes, p.name.negative)))
        return names

    def closest_names(self, text: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(text, self.valid_names(), n=n, cutoff=0.5)


@dataclass(frozen=True)
class GpuModel:
    """A MIG-capable GPU model: identification plus its profile table."""

    key: str
    product_names: tuple[str, ...]
    aliases: tuple[str, ...]
    pci_ids: tuple[PciId, ...]
    memory_mib: int
    architecture: str
    compute_capability: str
    table: ProfileTable = field(repr=False)

    @property
    def product_name(self) -> str:
        return self.product_names[0]

    @property
    def pci_id(self) -> PciId:
        return self.pci_ids[0]


@dataclass(frozen=True)
class Catalog:
    models: tuple[GpuModel, ...]

    def by_pci_id(self, pci: PciId) -> GpuModel | None:
        """The model whose device+vendor id matches; subsystem ids do not select a model."""
        for model in self.models:
            if any(m.device == pci.device and m.vendor == pci.vendor for m in model.pci_ids):
                return model
        return None

    def lookup(self, text: str) -> GpuModel:
        """A model by PCI id (`0x233010DE`, optionally `:subsystem`), NVML product name, key or alias."""
        wanted = text.strip()
        pci = PciId.parse(wanted) if wanted.lower().startswith("0x") else None
        if pci is not None:
            model = self.by_pci_id(pci)
            if model is not None:
                return model
        folded = wanted.casefold()
        for model in self.models:
            names = (model.key, *model.product_names, *model.aliases)
            if any(folded == n.casefold() for n in names):
                return model
        known = sorted({n for m in self.models for n in (m.key, *m.aliases)})
        close = difflib.get_close_matches(wanted.upper(), [k.upper() for k in known], n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CatalogError(
            f"unknown GPU model {text!r}: give a PCI device id such as 0x233010DE, an NVML product name, "
            f"or one of {', '.join(known)}{hint}"
        )


def _require(row: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in row:
        raise CatalogError(f"{where}: missing key {key!r}")
    value = row[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise CatalogError(f"{where}: {key!r} must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise CatalogError(f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def parse_placements(text: str, where: str = "placements") -> tuple[Placement, ...]:
    """Parse `{0,2,4}:2` (nvidia-smi -lgipp form) into placements."""
    match = _PLACEMENTS_RE.match(text.replace(" ", ""))
    if match is None:
        raise CatalogError(f"{where}: {text!r} is not a placement list; valid form: '{{0,2,4}}:2'")
    size = int(match.group(2))
    return tuple(Placement(int(s), size) for s in match.group(1).split(","))


def _gi_profile(row: Mapping[str, Any], where: str, memory_slices: int, total_mib: int) -> GpuInstanceProfile:
    name_text = _require(row, "name", str, where)
    where = f"{where} ({name_text})"
    name = parse_profile_name(name_text)
    if name.is_compute_instance or str(name) != name_text:
        raise CatalogError(f"{where}: GPU-instance profile names must be canonical GI names, got {name_text!r}")
    constant = _require(row, "constant", str, where)
    if constant not in GI_PROFILE_CONSTANTS:
        raise CatalogError(f"{where}: unknown NVML constant {constant!r}; valid: {', '.join(GI_PROFILE_CONSTANTS)}")
    placements = parse_placements(_require(row, "placements", str, where), where)
    for p in placements:
        if p.end > memory_slices:
            raise CatalogError(f"{where}: placement {p} runs past the GPU's {memory_slices} memory slices")
    max_count = _require(row, "max", int, where)
    if not 1 <= max_count <= len(placements):
        raise CatalogError(f"{where}: max {max_count} must be between 1 and the {len(placements)} placements")
    memory_mib = _require(row, "memory_mib", int, where)
    if not 0 < memory_mib <= total_mib:
        raise CatalogError(f"{where}: memory_mib {memory_mib} must be positive and at most the GPU's {total_mib}")
    only_with = row.get("coexists_only_with")
    return GpuInstanceProfile(
        name=name,
        constant=constant,
        id=_require(row, "id", int, where),
        slices=name.gpu,
        memory_mib=memory_mib,
        multiprocessors=_require(row, "sms", int, where),
        engines=Engines(
            copy=_require(row, "ce", int, where),
            decoder=_require(row, "dec", int, where),
            encoder=_require(row, "enc", int, where),
            jpeg=_require(row, "jpeg", int, where),
            ofa=_require(row, "ofa", int, where),
        ),
        max_count=max_count,
        placements=placements,
        coexists_only_with=None if only_with is None else frozenset(parse_profile_name(n) for n in only_with),
    )


def _ci_table(raw: Any, where: str) -> dict[int, dict[int, ComputeInstanceProfile]]:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must map GI compute slices to {{CI slices: max count}}")
    table: dict[int, dict[int, ComputeInstanceProfile]] = {}
    for g, cis in raw.items():
        if not isinstance(g, int) or not isinstance(cis, dict):
            raise CatalogError(f"{where}: entry {g!r} must map an integer to {{CI slices: max count}}")
        table[g] = {}
        for c, n in cis.items():
            if not isinstance(c, int) or c not in CI_PROFILE_CONSTANTS or c > g or not isinstance(n, int) or n < 1:
                raise CatalogError(f"{where}: GI {g}g entry {c!r}: {n!r} is not a valid CI slice count and max")
            table[g][c] = ComputeInstanceProfile(slices=c, gpu_slices=g, max_count=n)
        if g not in table[g]:
            raise CatalogError(f"{where}: GI {g}g must offer its full-size {g}c compute instance")
    return table


def _check_table(table: ProfileTable, where: str) -> None:
    profiles = table.gpu_instance_profiles
    for what, values in (
        ("name", [str(p.name) for p in profiles]),
        ("id", [str(p.id) for p in profiles]),
        ("constant", [p.constant for p in profiles]),
    ):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise CatalogError(f"{where}: duplicate profile {what} {', '.join(duplicates)}")
    names = {p.name for p in profiles}
    for p in profiles:
        if p.slices > table.compute_slices:
            raise CatalogError(f"{where}: {p.name} needs {p.slices} compute slices, the GPU has {table.compute_slices}")
        if p.slices not in table.compute_instance_profiles:
            raise CatalogError(f"{where}: no compute-instance profiles for {p.slices}g instances")
        unknown = sorted(str(n) for n in (p.coexists_only_with or ()) if n not in names)
        if unknown:
            raise CatalogError(f"{where}: {p.name} coexists_only_with unknown profiles {', '.join(unknown)}")


def load_catalog_text(text: str, source: str = "catalog.yaml") -> Catalog:
    """Parse and validate catalog data."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise CatalogError(f"{source}: expected a mapping with 'version: 1'")
    ci_tables = {
        name: _ci_table(value, f"{source}: compute_instance_tables.{name}")
        for name, value in (raw.get("compute_instance_tables") or {}).items()
    }
    profile_rows = raw.get("profile_tables") or {}
    models: list[GpuModel] = []
    seen_ids: dict[tuple[int, int], str] = {}
    seen_names: dict[str, str] = {}
    for index, row in enumerate(raw.get("models") or []):
        where = f"{source}: models[{index}]"
        key = _require(row, "key", str, where)
        where = f"{source}: model {key}"
        memory_slices = _require(row, "memory_slices", int, where)
        memory_mib = _require(row, "memory_mib", int, where)
        table_name = _require(row, "profiles", str, where)
        ci_name = _require(row, "compute_instances", str, where)
        if table_name not in profile_rows:
            raise CatalogError(f"{where}: unknown profile table {table_name!r}; known: {', '.join(profile_rows)}")
        if ci_name not in ci_tables:
            raise CatalogError(f"{where}: unknown compute-instance table {ci_name!r}; known: {', '.join(ci_tables)}")
        table = ProfileTable(
            model=key,
            compute_slices=_require(row, "compute_slices", int, where),
            memory_slices=memory_slices,
            gpu_instance_profiles=tuple(
                _gi_profile(p, f"{where} profile table {table_name} row {i}", memory_slices, memory_mib)
                for i, p in enumerate(profile_rows[table_name])
            ),
            compute_instance_profiles=ci_tables[ci_name],
        )
        _check_table(table, where)
        pci_ids: list[PciId] = []
        for text in _require(row, "pci_ids", list, where):
            pci = PciId.parse(str(text))
            if pci is None or pci.subsystem_device is not None:
                raise CatalogError(f"{where}: pci id {text!r} must look like 0x233010DE")
            if (pci.device, pci.vendor) in seen_ids:
                raise CatalogError(f"{where}: pci id {text} already belongs to {seen_ids[(pci.device, pci.vendor)]}")
            seen_ids[(pci.device, pci.vendor)] = key
            pci_ids.append(pci)
        product_names = tuple(str(n) for n in _require(row, "product_names", list, where))
        aliases = tuple(str(n) for n in row.get("aliases") or ())
        for name in (key, *product_names, *aliases):
            owner = seen_names.setdefault(name.casefold(), key)
            if owner != key:
                raise CatalogError(f"{where}: name {name!r} already belongs to {owner}")
        if not pci_ids or not product_names:
            raise CatalogError(f"{where}: needs at least one pci id and one product name")
        models.append(
            GpuModel(
                key=key,
                product_names=product_names,
                aliases=aliases,
                pci_ids=tuple(pci_ids),
                memory_mib=memory_mib,
                architecture=_require(row, "architecture", str, where),
                compute_capability=_require(row, "compute_capability", str, where),
                table=table,
            )
        )
    if not models:
        raise CatalogError(f"{source}: no models")
    return Catalog(models=tuple(models))


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with the package (loaded and validated once per process)."""
    text = resources.files("mig_manager").joinpath("data/catalog.yaml").read_text(encoding="utf-8")
    return load_catalog_text(text, "mig_manager/data/catalog.yaml")


def models_for(names: Iterable[str]) -> list[GpuModel]:
    catalog = default_catalog()
    return [catalog.lookup(n) for n in names]
