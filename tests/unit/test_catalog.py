"""The GPU catalog: every model of mig-facts section 4, consistent geometry, validation of the data file."""

from __future__ import annotations

import pytest

from mig_manager.catalog import Placement, default_catalog, load_catalog_text, parse_placements
from mig_manager.errors import CatalogError
from mig_manager.spec import PciId

# model alias -> (PCI id, 1g, 1g+me, double-memory 1g, 2g, 3g, 4g, 7g) from mig-facts 4.3
SEVEN_SLICE = {
    "A100-40GB": ("0x20B010DE", "1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
    "A100-80GB": ("0x20B210DE", "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-80GB": ("0x233010DE", "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-PCIE": ("0x233110DE", "1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-NVL": ("0x232110DE", "1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb"),
    "H100-96GB": ("0x233D10DE", "1g.12gb", "1g.12gb+me", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"),
    "H200": ("0x233510DE", "1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
    "GH200-144GB": ("0x234810DE", "1g.18gb", "1g.18gb+me", "1g.36gb", "2g.36gb", "3g.72gb", "4g.72gb", "7g.144gb"),
    "B200": ("0x290110DE", "1g.23gb", "1g.23gb+me", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"),
    "GB200": ("0x294110DE", "1g.23gb", "1g.23gb+me", "1g.47gb", "2g.47gb", "3g.93gb", "4g.93gb", "7g.186gb"),
    "B300": ("0x318210DE", "1g.34gb", "1g.34gb+me", "1g.67gb", "2g.67gb", "3g.135gb", "4g.135gb", "7g.269gb"),
    "GB300": ("0x31C210DE", "1g.35gb", "1g.35gb+me", "1g.70gb", "2g.70gb", "3g.139gb", "4g.139gb", "7g.278gb"),
}
SEVEN_SLICE_GEOMETRY = [
    (7, "{0,1,2,3,4,5,6}:1"),
    (1, "{0,1,2,3,4,5,6}:1"),
    (4, "{0,2,4,6}:2"),
    (3, "{0,2,4}:2"),
    (2, "{0,4}:4"),
    (1, "{0}:4"),
    (1, "{0}:8"),
]
# Every PCI id named by mig-facts 3.4 (NVIDIA's default config filters).
ALL_FILTER_IDS = [
    "0x294110DE",
    "0x31C210DE",
    "0x2BB510DE",
    "0x290110DE",
    "0x318210DE",
    "0x234810DE",
    "0x233510DE",
    "0x233B10DE",
    "0x232110DE",
    "0x233A10DE",
    "0x233010DE",
    "0x233110DE",
    "0x232210DE",
    "0x20B210DE",
    "0x20B510DE",
    "0x20F310DE",
    "0x20F510DE",
    "0x232410DE",
    "0x20B010DE",
    "0x20B110DE",
    "0x20F110DE",
    "0x20F610DE",
    "0x20B710DE",
    "0x234210DE",
    "0x233D10DE",
    "0x20B610DE",
    "0x232910DE",
]


@pytest.mark.parametrize("alias", sorted(SEVEN_SLICE))
def test_seven_slice_models_have_the_eight_slice_geometry(alias: str) -> None:
    model = default_catalog().lookup(alias)
    pci, *names = SEVEN_SLICE[alias]
    assert PciId.parse(pci) in model.pci_ids
    table = model.table
    assert (table.compute_slices, table.memory_slices) == (7, 8)
    got = [(str(p.name), p.max_count, p.placements) for p in table.gpu_instance_profiles]
    want = [(n, m, parse_placements(pl)) for n, (m, pl) in zip(names, SEVEN_SLICE_GEOMETRY, strict=True)]
    assert got == want


def test_a30_has_the_four_slice_geometry() -> None:
    table = default_catalog().lookup("0x20B710DE").table
    assert (table.compute_slices, table.memory_slices) == (4, 4)
    got = {str(p.name): (p.id, p.max_count, p.placements) for p in table.gpu_instance_profiles}
    assert got == {
        "1g.6gb": (14, 4, parse_placements("{0,1,2,3}:1")),
        "1g.6gb+me": (21, 1, parse_placements("{0,1,2,3}:1")),
        "2g.12gb": (5, 2, parse_placements("{0,2}:2")),
        "2g.12gb+me": (6, 1, parse_placements("{0,2}:2")),
        "4g.24gb": (0, 1, parse_placements("{0}:4")),
    }


def test_rtx_pro_6000_uses_the_observed_twelve_unit_axis() -> None:
    table = default_catalog().lookup("RTX-PRO-6000").table
    assert (table.compute_slices, table.memory_slices) == (4, 12)
    by_name = {str(p.name): p for p in table.gpu_instance_profiles}
    assert set(by_name) == {
        "1g.24gb",
        "1g.24gb+me",
        "1g.24gb+gfx",
        "1g.24gb+me.all",
        "1g.24gb-me",
        "2g.48gb",
        "2g.48gb+gfx",
        "2g.48gb+me.all",
        "2g.48gb-me",
        "4g.96gb",
        "4g.96gb+gfx",
    }
    assert by_name["1g.24gb"].placements == parse_placements("{0,3,6,9}:3")
    assert by_name["2g.48gb-me"].placements == parse_placements("{0,6}:6")
    assert by_name["4g.96gb+gfx"].placements == (Placement(0, 12),)
    assert by_name["1g.24gb+me.all"].coexists_only_with is not None


@pytest.mark.parametrize("pci", ALL_FILTER_IDS)
def test_every_default_config_pci_id_is_known(pci: str) -> None:
    parsed = PciId.parse(pci)
    assert parsed is not None
    assert default_catalog().by_pci_id(parsed) is not None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("0x233010DE", "H100-SXM5-80GB"),
        ("0x233010de:0x16C010DE", "H100-SXM5-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM5-80GB"),
        ("nvidia a100-sxm4-40gb", "A100-SXM4-40GB"),
        ("A100-40GB", "A100-SXM4-40GB"),
        ("A800-80GB", "A100-SXM4-80GB"),
        ("H20", "H100-96GB"),
        ("NVIDIA H200 NVL", "H200-141GB"),
        ("A30", "A30-PCIE-24GB"),
    ],
)
def test_lookup(text: str, key: str) -> None:
    assert default_catalog().lookup(text).key == key


def test_lookup_unknown_model_suggests() -> None:
    with pytest.raises(CatalogError, match=r"unknown GPU model 'H100-80G'.*did you mean.*H100-80GB"):
        default_catalog().lookup("H100-80G")


def test_same_name_is_a_different_profile_on_different_models() -> None:
    catalog = default_catalog()
    a40 = catalog.lookup("A100-40GB").table.gpu_instance_profiles
    a80 = catalog.lookup("A100-80GB").table.gpu_instance_profiles
    on_40 = next(p for p in a40 if str(p.name) == "1g.10gb")
    on_80 = next(p for p in a80 if str(p.name) == "1g.10gb")
    assert (on_40.constant, on_40.max_count) == ("1_SLICE_REV2", 4)
    assert (on_80.constant, on_80.max_count) == ("1_SLICE", 7)


def test_every_profile_fits_its_gpu() -> None:
    for model in default_catalog().models:
        for p in model.table.gpu_instance_profiles:
            assert p.memory_mib < model.memory_mib, (model.key, p.name)
            assert all(pl.end <= model.table.memory_slices for pl in p.placements)
            assert p.max_count <= len(p.placements)


def test_ci_tables_differ_between_ampere_and_hopper() -> None:
    catalog = default_catalog()
    assert 4 in catalog.lookup("A100-40GB").table.compute_instance_profiles[7]
    assert 4 not in catalog.lookup("H100-80GB").table.compute_instance_profiles[7]


GOOD_ROW = (
    "{constant: 1_SLICE, id: 19, name: 1g.5gb, max: 2, memory_mib: 100, sms: 1, ce: 1, dec: 0, enc: 0, jpeg: 0, "
    'ofa: 0, placements: "{0,1}:1"}'
)


def _data(row: str = GOOD_ROW, model_extra: str = "", slices: int = 2) -> str:
    return f"""
version: 1
compute_instance_tables:
  t: {{1: {{1: 1}}}}
profile_tables:
  p:
    - {row}
models:
  - key: X
    product_names: [NVIDIA X]
    pci_ids: ["0x123410DE"]
    memory_mib: 1000
    architecture: test
    compute_capability: "1.0"
    compute_slices: 1
    memory_slices: {slices}
    profiles: p
    compute_instances: t
{model_extra}
"""


def test_minimal_catalog_loads() -> None:
    catalog = load_catalog_text(_data())
    assert catalog.models[0].table.gpu_instance_profiles[0].placements == (Placement(0, 1), Placement(1, 1))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_data(slices=1), r"placement 1:1 runs past the GPU's 1 memory slices"),
        (_data(GOOD_ROW.replace("max: 2", "max: 3")), r"max 3 must be between 1 and the 2 placements"),
        (_data(GOOD_ROW.replace("1_SLICE", "9_SLICE")), r"unknown NVML constant '9_SLICE'"),
        (_data(GOOD_ROW.replace("1g.5gb", "1c.1g.5gb")), r"must be canonical GI names"),
        (_data(GOOD_ROW.replace("{0,1}:1", "0,1:1")), r"is not a placement list"),
        (_data(GOOD_ROW.replace("memory_mib: 100", "memory_mib: 5000")), r"at most the GPU's 1000"),
        (_data(GOOD_ROW.replace("id: 19", "id: x")), r"'id' must be an integer"),
        (_data(GOOD_ROW.replace("sms: 1, ", "")), r"missing key 'sms'"),
        (_data().replace("profiles: p", "profiles: q"), r"unknown profile table 'q'"),
        (_data().replace("0x123410DE", "NVIDIA"), r"pci id 'NVIDIA' must look like"),
        ("version: 2", r"expected a mapping with 'version: 1'"),
        ("{", r"not valid YAML"),
    ],
)
def test_bad_catalog_data_is_rejected_with_where(data: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog_text(data)


def test_duplicate_pci_id_across_models_is_rejected() -> None:
    duplicate = """  - key: Y
    product_names: [NVIDIA Y]
    pci_ids: ["0x123410DE"]
    memory_mib: 1000
    architecture: test
    compute_capability: "1.0"
    compute_slices: 1
    memory_slices: 2
    profiles: p
    compute_instances: t
"""
    with pytest.raises(CatalogError, match=r"model Y: pci id 0x123410DE already belongs to X"):
        load_catalog_text(_data(model_extra=duplicate))
