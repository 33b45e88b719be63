"""Table-driven tests of mig_manager.spec: every rule of the mig-parted config format v1 (mig-facts.md 1.1 to 1.3)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mig_manager.errors import ConfigSelectionError, ProfileNameError, SpecError, SpecFormatError
from mig_manager.spec import (
    Devices,
    LoadedSpec,
    MigConfigEntry,
    MigPartedSpec,
    PciId,
    ProfileName,
    canonical_profile_name,
    dump_spec,
    load_spec,
    load_spec_file,
    parse_profile_name,
    select_config,
    spec_to_data,
)

# --------------------------------------------------------------------------------------------------------------------
# Profile names
# --------------------------------------------------------------------------------------------------------------------

VALID_NAMES = [
    # text, parsed, canonical
    ("1g.5gb", ProfileName(1, 1, 5), "1g.5gb"),
    ("7g.80gb", ProfileName(7, 7, 80), "7g.80gb"),
    ("1c.1g.5gb", ProfileName(1, 1, 5), "1g.5gb"),
    ("1c.3g.40gb", ProfileName(1, 3, 40), "1c.3g.40gb"),
    ("4c.7g.80gb", ProfileName(4, 7, 80), "4c.7g.80gb"),
    ("1g.10gb+me", ProfileName(1, 1, 10, ("me",)), "1g.10gb+me"),
    ("1g.24gb-me", ProfileName(1, 1, 24, ("me",), negative=True), "1g.24gb-me"),
    ("1g.24gb+gfx", ProfileName(1, 1, 24, ("gfx",)), "1g.24gb+gfx"),
    ("2g.20gb+me.all", ProfileName(2, 2, 20, ("me.all",)), "2g.20gb+me.all"),
    ("1g.5gb+me,gfx", ProfileName(1, 1, 5, ("gfx", "me")), "1g.5gb+gfx,me"),
    ("1g.5gb+gfx,me", ProfileName(1, 1, 5, ("gfx", "me")), "1g.5gb+gfx,me"),
    ("1g.5gb-me,gfx", ProfileName(1, 1, 5, ("gfx", "me"), negative=True), "1g.5gb-gfx,me"),
    ("1c.1g.5gb+me", ProfileName(1, 1, 5, ("me",)), "1g.5gb+me"),
    ("0g.0gb", ProfileName(0, 0, 0), "0g.0gb"),
    ("01g.05gb", ProfileName(1, 1, 5), "1g.5gb"),
    ("0c.1g.5gb", ProfileName(0, 1, 5), "0c.1g.5gb"),
    ("1g.5gb+ME", ProfileName(1, 1, 5, ("ME",)), "1g.5gb+ME"),
    ("1g.5gb+a1.b2", ProfileName(1, 1, 5, ("a1.b2",)), "1g.5gb+a1.b2"),
]


@pytest.mark.parametrize(("text", "parsed", "canonical"), VALID_NAMES, ids=[v[0] for v in VALID_NAMES])
def test_parse_valid_profile_name(text: str, parsed: ProfileName, canonical: str) -> None:
    assert parse_profile_name(text) == parsed
    assert canonical_profile_name(text) == canonical
    assert str(parsed) == canonical
    assert parse_profile_name(canonical) == parsed


INVALID_NAMES = [
    # text, fragment of the reason
    ("", "empty"),
    ("1g", "expected 2 or 3"),
    ("1c.1g.5gb.x", "must be a number followed by"),
    ("a.b.c.d", "must be a number followed by"),
    ("1g.5", 'followed by "gb"'),
    ("1.5gb", 'followed by "g"'),
    ("g.5gb", 'field "g" must be a number'),
    ("1g.gb", 'field "gb" must be a number'),
    ("1x.1g.5gb", 'followed by "c"'),
    ("1G.5GB", 'followed by "g"'),
    (" 1g.5gb", "leading or trailing spaces"),
    ("1g.5gb ", "leading or trailing spaces"),
    ("1g. 5gb", "leading or trailing spaces"),
    ("1 g.5gb", "must be a number"),
    ("1g.5gb+me-gfx", "both '+' and '-'"),
    ("1g.5gb-me+gfx", "both '+' and '-'"),
    ("1g.5gb+", "empty"),
    ("1g.5gb-", "empty"),
    ("1g.5gb+me,", "empty"),
    ("1g.5gb+,me", "empty"),
    ("1g.5gb+me,me", "repeated"),
    ("1g.5gb+1me", "begins with a digit"),
    ("1g.5gb+.me", "begins or ends with a dot"),
    ("1g.5gb+me.", "begins or ends with a dot"),
    ("1g.5gb+ me", "leading or trailing spaces"),
    ("1g.5gb+m e", "only letters, digits and dots"),
    ("1g.5gb+m_e", "only letters, digits and dots"),
    ("1g.5gb+me+gfx", "only letters, digits and dots"),
    ("1g.5gb+mé", "only letters, digits and dots"),
    ("+me", "expected 2 or 3"),
    ("-1g.5gb", "expected 2 or 3"),
    ("1g.٥gb", "must be a number"),
    ("1_0g.5gb", "must be a number"),
    ("99999999999999999999g.5gb", "must be a number"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID_NAMES, ids=[repr(v[0]) for v in INVALID_NAMES])
def test_parse_invalid_profile_name(text: str, reason: str) -> None:
    with pytest.raises(ProfileNameError) as info:
        parse_profile_name(text)
    message = str(info.value)
    assert reason in message
    assert "valid form" in message and "<C>c.<G>g.<GB>gb" in message
    assert info.value.profile == text
    assert isinstance(info.value, SpecError)


def test_profile_name_helpers() -> None:
    ci = parse_profile_name("1c.3g.40gb")
    assert ci.is_compute_instance
    assert ci.gi_name() == ProfileName(3, 3, 40)
    assert not ci.gi_name().is_compute_instance
    assert str(ci.gi_name()) == "3g.40gb"
    assert ProfileName(1, 1, 5, ("me", "gfx")).attributes == ("gfx", "me")
    assert ProfileName(1, 1, 5, (), negative=True) == ProfileName(1, 1, 5)
    assert sorted([ProfileName(2, 2, 10), ProfileName(1, 1, 5)]) == [ProfileName(1, 1, 5), ProfileName(2, 2, 10)]
    assert len({parse_profile_name("1g.5gb+me,gfx"), parse_profile_name("1c.1g.5gb+gfx,me")}) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compute": -1, "gpu": 1, "memory_gb": 5},
        {"compute": True, "gpu": 1, "memory_gb": 5},
        {"compute": 1, "gpu": 1, "memory_gb": 5, "attributes": ("me", "me")},
        {"compute": 1, "gpu": 1, "memory_gb": 5, "attributes": ("1me",)},
    ],
    ids=["negative", "bool", "duplicate-attribute", "bad-attribute"],
)
def test_profile_name_construction_is_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProfileNameError):
        ProfileName(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------------
# PCI ids and device filters
# --------------------------------------------------------------------------------------------------------------------

PCI_PARSE = [
    # text, expected (None: unparseable, never matches)
    ("0x20B010DE", PciId(0x20B0, 0x10DE)),
    ("0x20b010de", PciId(0x20B0, 0x10DE)),
    ("0X20B010DE", PciId(0x20B0, 0x10DE)),
    ("0x20B010DE:0x16C010DE", PciId(0x20B0, 0x10DE, 0x16C0, 0x10DE)),
    ("0x20b010de:0x16c010de", PciId(0x20B0, 0x10DE, 0x16C0, 0x10DE)),
    ("548409566", PciId(0x20B0, 0x10DE)),  # decimal, Go base 0
    ("0o4054010336", PciId(0x20B0, 0x10DE)),  # octal with prefix
    ("04054010336", PciId(0x20B0, 0x10DE)),  # legacy octal
    ("0x_20B0_10DE", PciId(0x20B0, 0x10DE)),  # Go allows underscores between digits with a base prefix
    ("0x10DE", PciId(0x0000, 0x10DE)),
    ("0", PciId(0, 0)),
    ("0xFFFFFFFF", PciId(0xFFFF, 0xFFFF)),
    ("A100-SXM4-40GB", None),
    ("", None),
    ("0x", None),
    ("0x20B010DE:", None),
    (":0x16C010DE", None),
    ("0x20B010DE:0x16C010DE:0x1", None),
    ("0x1FFFFFFFF", None),  # over 32 bits
    (" 0x20B010DE", None),
    ("0x20B010DE ", None),
    ("+0x20B010DE", None),
    ("-1", None),
    ("0x20B0__10DE", None),
    ("0x_", None),
    ("08", None),  # not octal
    ("0x20G010DE", None),
]


@pytest.mark.parametrize(("text", "expected"), PCI_PARSE, ids=[repr(t) for t, _ in PCI_PARSE])
def test_pci_id_parse(text: str, expected: PciId | None) -> None:
    assert PciId.parse(text) == expected


PCI_STR = [
    (PciId(0x20B0, 0x10DE), "0x20B010DE"),
    (PciId(0x20B0, 0x10DE, 0x16C0, 0x10DE), "0x20B010DE:0x16C010DE"),
    (PciId(0x1, 0x2), "0x00010002"),
    (PciId.from_device_vendor(0x233010DE), "0x233010DE"),
    (PciId.from_device_vendor(0x233010DE, 0x16C110DE), "0x233010DE:0x16C110DE"),
]


@pytest.mark.parametrize(("pci", "text"), PCI_STR, ids=[t for _, t in PCI_STR])
def test_pci_id_str(pci: PciId, text: str) -> None:
    assert str(pci) == text
    assert PciId.parse(text) == pci
    assert PciId.parse(text.lower()) == pci


A100 = PciId(0x20B0, 0x10DE, 0x134F, 0x10DE)
A100_OTHER_BOARD = PciId(0x20B0, 0x10DE, 0x1450, 0x10DE)
A100_NO_SUBSYSTEM = PciId(0x20B0, 0x10DE)
H100 = PciId(0x2330, 0x10DE, 0x16C1, 0x10DE)

PCI_MATCHES = [
    ("device-vendor-matches", "0x20B010DE", A100, True),
    ("lowercase-hex", "0x20b010de", A100, True),
    ("other-board-same-device", "0x20B010DE", A100_OTHER_BOARD, True),
    ("gpu-without-subsystem", "0x20B010DE", A100_NO_SUBSYSTEM, True),
    ("other-device", "0x20B010DE", H100, False),
    ("other-vendor", "0x20B01234", A100, False),
    ("subsystem-matches", "0x20B010DE:0x134F10DE", A100, True),
    ("subsystem-lowercase", "0x20b010de:0x134f10de", A100, True),
    ("subsystem-differs", "0x20B010DE:0x134F10DE", A100_OTHER_BOARD, False),
    ("subsystem-but-gpu-has-none", "0x20B010DE:0x134F10DE", A100_NO_SUBSYSTEM, False),
    ("subsystem-other-device", "0x233010DE:0x134F10DE", A100, False),
]


@pytest.mark.parametrize(
    ("filter_text", "gpu", "expected"), [c[1:] for c in PCI_MATCHES], ids=[c[0] for c in PCI_MATCHES]
)
def test_pci_id_matches(filter_text: str, gpu: PciId, expected: bool) -> None:
    wanted = PciId.parse(filter_text)
    assert wanted is not None
    assert wanted.matches(gpu) is expected


@pytest.mark.parametrize(
    "build",
    [
        lambda: PciId(0x10000, 0x10DE),
        lambda: PciId(-1, 0x10DE),
        lambda: PciId(0x20B0, 0x10DE, 0x16C0, None),
        lambda: PciId.from_device_vendor(0x1_0000_0000),
        lambda: PciId.from_device_vendor(0x20B010DE, -1),
    ],
    ids=["device-too-big", "negative", "half-subsystem", "value-too-big", "subsystem-negative"],
)
def test_pci_id_construction_is_checked(build: Callable[[], PciId]) -> None:
    with pytest.raises(SpecError):
        build()


def test_pci_id_primary() -> None:
    assert A100.has_subsystem and not A100.primary().has_subsystem
    assert A100.primary() == A100_NO_SUBSYSTEM


SELECTS = [
    # id, device_filter, devices, index, gpu, expected
    ("no-filter-all", None, "all", 3, A100, True),
    ("empty-string-filter-matches-all", "", "all", 0, H100, True),
    ("empty-list-filter-matches-all", (), "all", 0, H100, True),
    ("string-filter-match", "0x20B010DE", "all", 0, A100, True),
    ("string-filter-miss", "0x20B010DE", "all", 0, H100, False),
    ("list-filter-any", ("0x233010DE", "0x20B010DE"), "all", 0, A100, True),
    ("list-filter-none", ("0x233110DE", "0x20B110DE"), "all", 0, A100, False),
    ("unparseable-never-matches", "A100-SXM4-40GB", "all", 0, A100, False),
    ("unparseable-in-list-others-still-match", ("A100-SXM4-40GB", "0x20B010DE"), "all", 0, A100, True),
    ("empty-string-in-list-never-matches", ("",), "all", 0, A100, False),
    ("subsystem-filter-match", "0x20B010DE:0x134F10DE", "all", 0, A100, True),
    ("subsystem-filter-miss", "0x20B010DE:0x134F10DE", "all", 0, A100_OTHER_BOARD, False),
    ("index-in-list", None, (0, 2), 2, A100, True),
    ("index-not-in-list", None, (0, 2), 1, A100, False),
    ("empty-devices", None, (), 0, A100, False),
    ("global-index-with-filter", "0x233010DE", (4, 5), 4, H100, True),
    ("filter-and-index-both-needed", "0x233010DE", (4, 5), 4, A100, False),
]


@pytest.mark.parametrize(
    ("device_filter", "devices", "index", "gpu", "expected"), [c[1:] for c in SELECTS], ids=[c[0] for c in SELECTS]
)
def test_entry_selects(
    device_filter: str | tuple[str, ...] | None, devices: Devices, index: int, gpu: PciId, expected: bool
) -> None:
    entry = MigConfigEntry(devices=devices, mig_enabled=False, device_filter=device_filter)
    assert entry.selects(index, gpu) is expected


@pytest.mark.parametrize(
    ("device_filter", "filters"),
    [(None, ()), ("", ()), ("0x20B010DE", ("0x20B010DE",)), ((), ()), (("a", "b"), ("a", "b")), (("",), ("",))],
    ids=["absent", "empty-string", "string", "empty-list", "list", "list-with-empty-string"],
)
def test_entry_filters(device_filter: str | tuple[str, ...] | None, filters: tuple[str, ...]) -> None:
    assert MigConfigEntry(devices="all", mig_enabled=False, device_filter=device_filter).filters() == filters


DESIRED = [
    ("disabled", False, None, {}),
    ("disabled-empty", False, {}, {}),
    ("enabled-empty", True, {}, {}),
    ("plain", True, {"1g.5gb": 2, "3g.20gb": 1}, {ProfileName(1, 1, 5): 2, ProfileName(3, 3, 20): 1}),
    ("zero-dropped", True, {"1g.5gb": 2, "2g.10gb": 0}, {ProfileName(1, 1, 5): 2}),
    ("ci-canonicalised-and-summed", True, {"1c.1g.5gb": 1, "1g.5gb": 2}, {ProfileName(1, 1, 5): 3}),
    ("attribute-order", True, {"1g.5gb+me,gfx": 1, "1g.5gb+gfx,me": 1}, {ProfileName(1, 1, 5, ("gfx", "me")): 2}),
    ("ci-profile-kept", True, {"1c.3g.40gb": 3}, {ProfileName(1, 3, 40): 3}),
    ("negative-attr", True, {"1g.24gb-me": 1}, {ProfileName(1, 1, 24, ("me",), negative=True): 1}),
]


@pytest.mark.parametrize(("enabled", "mig_devices", "expected"), [d[1:] for d in DESIRED], ids=[d[0] for d in DESIRED])
def test_desired_devices(enabled: bool, mig_devices: dict[str, int] | None, expected: dict[ProfileName, int]) -> None:
    entry = MigConfigEntry(devices="all", mig_enabled=enabled, mig_devices=mig_devices)
    assert entry.desired_devices() == expected


# --------------------------------------------------------------------------------------------------------------------
# Loading valid configs
# --------------------------------------------------------------------------------------------------------------------

NVIDIA_EXAMPLE = """\
version: v1                      # must be exactly "v1"
mig-configs:                     # map: config name -> non-empty list of entries
  all-balanced:
    - device-filter: ["0x20B010DE", "0x20B110DE"]   # optional; string or list of strings
      devices: all               # "all" or list of ints, e.g. [0,1,2,3]
      mig-enabled: true          # required bool
      mig-devices:               # required when mig-enabled: true (may be {})
        "1g.5gb": 2
        "2g.10gb": 1
        "3g.20gb": 1
"""

DEFAULT_EXCERPT = """\
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false

  all-enabled:
    - devices: all
      mig-enabled: true
      mig-devices: {}

  all-1g.10gb:
    # H100-80GB, H800-80GB, A100-80GB, A800-80GB
    - device-filter: ["0x233010DE", "0x233110DE", "0x232210DE", "0x20B210DE",
                      "0x20B510DE", "0x20F310DE", "0x20F510DE", "0x232410DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 7

    # A100-40GB, A800-40GB
    - device-filter: ["0x20B010DE", "0x20B110DE", "0x20F110DE", "0x20F610DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb": 4

  all-1g.10gb.me:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.10gb+me": 1

  all-1g.24gb-me:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.24gb-me": 1

  all-balanced:
    # GB200 HGX
    - device-filter: ["0x294110DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.23gb": 2
        "2g.47gb": 1
        "3g.93gb": 1

    # RTX PRO 6000 Blackwell
    - device-filter: ["0x2BB510DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.24gb": 2
        "2g.48gb": 1

    # A100-40GB, A800-40GB
    - device-filter: ["0x20B010DE", "0x20B110DE", "0x20F110DE", "0x20F610DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "2g.10gb": 1
        "3g.20gb": 1

    # A30-24GB
    - device-filter: "0x20B710DE"
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.6gb": 2
        "2g.12gb": 1
"""

# The well-formed documents of NVIDIA's own spec tests (tab-indented JSON, trailing commas).
NVIDIA_TEST_JSON = (
    '{\n\t"version": "v1",\n\t"mig-configs": {\n\t\t"all-disabled": [{\n'
    '\t\t\t"devices": "all",\n\t\t\t"mig-enabled": false,\n\t\t}]\n\t}\n}'
)

VALID_DOCS = [
    ("empty", "", MigPartedSpec("", {})),
    ("only-comments", "# nothing here\n", MigPartedSpec("", {})),
    ("null-document", "~\n", MigPartedSpec("", {})),
    ("only-version", "version: v1\n", MigPartedSpec("v1", {})),
    ("only-version-json", '{"version": "v1"}', MigPartedSpec("v1", {})),
    (
        "nvidia-test-json-with-tabs",
        NVIDIA_TEST_JSON,
        MigPartedSpec("v1", {"all-disabled": (MigConfigEntry("all", False),)}),
    ),
    (
        "nvidia-example",
        NVIDIA_EXAMPLE,
        MigPartedSpec(
            "v1",
            {
                "all-balanced": (
                    MigConfigEntry(
                        "all", True, {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}, ("0x20B010DE", "0x20B110DE")
                    ),
                )
            },
        ),
    ),
    (
        "devices-list-and-string-filter",
        'version: v1\nmig-configs:\n  half:\n    - device-filter: "0x20B010DE"\n      devices: [0, 1]\n'
        "      mig-enabled: false\n    - devices: [2, 3]\n      mig-enabled: true\n      mig-devices: {}\n",
        MigPartedSpec(
            "v1",
            {"half": (MigConfigEntry((0, 1), False, None, "0x20B010DE"), MigConfigEntry((2, 3), True, {}))},
        ),
    ),
    (
        "disabled-with-empty-mig-devices",
        "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n      mig-devices: {}\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", False, {}),)}),
    ),
    (
        "disabled-with-null-mig-devices",
        "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n      mig-devices:\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", False),)}),
    ),
    (
        "null-device-filter-is-no-filter",
        "version: v1\nmig-configs:\n  a:\n    - device-filter:\n      devices: all\n      mig-enabled: false\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", False),)}),
    ),
    (
        "empty-filter-forms",
        'version: v1\nmig-configs:\n  a:\n    - device-filter: ""\n      devices: all\n      mig-enabled: false\n'
        "    - device-filter: []\n      devices: all\n      mig-enabled: false\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", False, None, ""), MigConfigEntry("all", False, None, ()))}),
    ),
    (
        "format-valid-unknown-profile",
        "version: v1\nmig-configs:\n  odd:\n    - devices: all\n      mig-enabled: true\n"
        '      mig-devices: {"0g.0gb": 100}\n',
        MigPartedSpec("v1", {"odd": (MigConfigEntry("all", True, {"0g.0gb": 100}),)}),
    ),
    (
        "some-zero-counts",
        "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
        "      mig-devices: {1g.5gb: 0, 2g.10gb: 3}\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", True, {"1g.5gb": 0, "2g.10gb": 3}),)}),
    ),
    (
        "yaml11-booleans",
        "version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: yes\n      mig-devices: {}\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", True, {}),)}),
    ),
    (
        "integer-config-name",
        "version: v1\nmig-configs:\n  7:\n    - devices: all\n      mig-enabled: false\n",
        MigPartedSpec("v1", {"7": (MigConfigEntry("all", False),)}),
    ),
    (
        "anchors-and-merge-keys",
        "version: v1\nmig-configs:\n  a:\n    - &off {devices: all, mig-enabled: false}\n  b:\n"
        "    - <<: *off\n      devices: [1]\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry("all", False),), "b": (MigConfigEntry((1,), False),)}),
    ),
    (
        "negative-and-empty-device-indices",
        "version: v1\nmig-configs:\n  a:\n    - devices: [-1]\n      mig-enabled: false\n"
        "    - devices: []\n      mig-enabled: false\n",
        MigPartedSpec("v1", {"a": (MigConfigEntry((-1,), False), MigConfigEntry((), False))}),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [d[1:] for d in VALID_DOCS], ids=[d[0] for d in VALID_DOCS])
def test_load_valid(text: str, expected: MigPartedSpec) -> None:
    assert load_spec(text).spec == expected


def test_load_keeps_order_and_lines() -> None:
    loaded = load_spec(DEFAULT_EXCERPT, "config-default.yaml")
    spec = loaded.spec
    assert list(spec.mig_configs) == [
        "all-disabled",
        "all-enabled",
        "all-1g.10gb",
        "all-1g.10gb.me",
        "all-1g.24gb-me",
        "all-balanced",
    ]
    assert loaded.warnings == ()
    balanced = spec.mig_configs["all-balanced"]
    assert [e.line for e in balanced] == [42, 51, 59, 68]
    assert balanced[3].device_filter == "0x20B710DE"
    assert balanced[2].desired_devices() == {
        ProfileName(1, 1, 5): 2,
        ProfileName(2, 2, 10): 1,
        ProfileName(3, 3, 20): 1,
    }
    a100_40 = PciId(0x20B0, 0x10DE, 0x134F, 0x10DE)
    a30 = PciId(0x20B7, 0x10DE, 0x1532, 0x10DE)
    assert [e.selects(0, a100_40) for e in balanced] == [False, False, True, False]
    assert [e.selects(5, a30) for e in balanced] == [False, False, False, True]
    one_g = spec.mig_configs["all-1g.10gb"]
    assert [e.desired_devices() for e in one_g if e.selects(0, a100_40)] == [{ProfileName(1, 1, 10): 4}]
    assert spec.mig_configs["all-enabled"][0].mig_devices == {}
    assert spec.mig_configs["all-1g.24gb-me"][0].desired_devices() == {ProfileName(1, 1, 24, ("me",), True): 1}


# --------------------------------------------------------------------------------------------------------------------
# Loading invalid configs: every message names the source, config, entry, key and line, and says what is valid
# --------------------------------------------------------------------------------------------------------------------

HEAD = "version: v1\nmig-configs:\n  cfg:\n"  # entries start on line 4


def entry_doc(*lines: str) -> str:
    """A document with one config "cfg" whose first entry is made of `lines` (the first line is line 4)."""
    return HEAD + "".join(("    - " if i == 0 else "      ") + line + "\n" for i, line in enumerate(lines))


# id, text, config, entry, key, line, fragments of the message
INVALID_DOCS: list[tuple[str, str, str | None, int | None, str | None, int | None, tuple[str, ...]]] = [
    ("document-is-a-list", "- a\n", None, None, None, 1, ("must be a mapping",)),
    ("document-is-a-string", "hello\n", None, None, None, 1, ("must be a mapping",)),
    ("unexpected-top-key", "version: v1\nbogus: 1\n", None, None, "bogus", 2, ("unexpected key", '"mig-configs"')),
    ("misspelt-top-key", "Version: v1\n", None, None, "Version", 1, ('did you mean "version"',)),
    (
        "missing-version",
        "mig-configs:\n  a:\n    - {devices: all, mig-enabled: false}\n",
        None,
        None,
        None,
        1,
        ('missing required key "version"', '"v1"'),
    ),
    ("empty-mapping", "{}", None, None, None, 1, ('missing required key "version"',)),
    ("wrong-version", "version: v2\n", None, None, "version", 1, ('unknown version "v2"', '"v1"')),
    ("version-not-a-string", "version: 1\n", None, None, "version", 1, ("must be the string", "integer 1")),
    ("version-null", "version:\n", None, None, "version", 1, ("must be the string",)),
    ("empty-mig-configs", "version: v1\nmig-configs: {}\n", None, None, "mig-configs", 2, ("at least one config",)),
    ("null-mig-configs", "version: v1\nmig-configs:\n", None, None, "mig-configs", 2, ("at least one config",)),
    ("mig-configs-a-list", "version: v1\nmig-configs: [a]\n", None, None, "mig-configs", 2, ("must be a mapping",)),
    ("empty-entry-list", HEAD.replace("cfg:\n", "cfg: []\n"), "cfg", None, None, 3, ("at least one entry",)),
    ("null-entry-list", HEAD, "cfg", None, None, 3, ("at least one entry",)),
    ("entries-a-mapping", HEAD + "    devices: all\n", "cfg", None, None, 4, ("must be a list of entries",)),
    ("entry-a-string", HEAD + "    - all\n", "cfg", 0, None, 4, ("must be a mapping", '"devices"')),
    ("entry-null", HEAD + "    -\n", "cfg", 0, None, 4, ("must be a mapping",)),
    ("missing-devices", entry_doc("mig-enabled: false"), "cfg", 0, "devices", 4, ("missing required key", '"all"')),
    ("missing-mig-enabled", entry_doc("devices: all"), "cfg", 0, "mig-enabled", 4, ("missing required key",)),
    (
        "unexpected-entry-key",
        entry_doc("devices: all", "mig-enabled: false", "mig-device: {}"),
        "cfg",
        0,
        "mig-device",
        6,
        ("unexpected key", 'did you mean "mig-devices"', '"device-filter"'),
    ),
    ("devices-other-string", entry_doc("devices: some", "mig-enabled: false"), "cfg", 0, "devices", 4, ('"some"',)),
    ("devices-quoted-list", entry_doc("devices: '0,1'", "mig-enabled: false"), "cfg", 0, "devices", 4, ("invalid",)),
    ("devices-mapping", entry_doc("devices: {}", "mig-enabled: false"), "cfg", 0, "devices", 4, ("got a mapping",)),
    ("devices-integer", entry_doc("devices: 0", "mig-enabled: false"), "cfg", 0, "devices", 4, ("integer 0",)),
    ("devices-null", entry_doc("devices:", "mig-enabled: false"), "cfg", 0, "devices", 4, ("null",)),
    ("devices-string-item", entry_doc("devices: [0, '1']", "mig-enabled: false"), "cfg", 0, "devices", 4, ('"1"',)),
    ("devices-bool-item", entry_doc("devices: [true]", "mig-enabled: false"), "cfg", 0, "devices", 4, ("boolean",)),
    ("devices-float-item", entry_doc("devices: [1.5]", "mig-enabled: false"), "cfg", 0, "devices", 4, ("1.5",)),
    (
        "filter-unquoted-hex",
        entry_doc("device-filter: 0x20B010DE", "devices: all", "mig-enabled: false"),
        "cfg",
        0,
        "device-filter",
        4,
        ("must be a string", 'quote it: "0x20B010DE"'),
    ),
    (
        "filter-unquoted-hex-in-list",
        entry_doc('device-filter: ["0x20B110DE", 0x20B010DE]', "devices: all", "mig-enabled: false"),
        "cfg",
        0,
        "device-filter",
        4,
        ('quote it: "0x20B010DE"',),
    ),
    (
        "filter-bool",
        entry_doc("device-filter: true", "devices: all", "mig-enabled: false"),
        "cfg",
        0,
        "device-filter",
        4,
        ("boolean true",),
    ),
    (
        "filter-mapping",
        entry_doc("device-filter: {a: b}", "devices: all", "mig-enabled: false"),
        "cfg",
        0,
        "device-filter",
        4,
        ("got a mapping", "0x20B010DE"),
    ),
    ("mig-enabled-string", entry_doc("devices: all", "mig-enabled: 'true'"), "cfg", 0, "mig-enabled", 5, ("true or",)),
    ("mig-enabled-int", entry_doc("devices: all", "mig-enabled: 1"), "cfg", 0, "mig-enabled", 5, ("integer 1",)),
    ("mig-enabled-null", entry_doc("devices: all", "mig-enabled:"), "cfg", 0, "mig-enabled", 5, ("null",)),
    (
        "enabled-without-mig-devices",
        entry_doc("devices: all", "mig-enabled: true"),
        "cfg",
        0,
        "mig-devices",
        4,
        ("required when", "{}"),
    ),
    (
        "enabled-with-null-mig-devices",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("required when",),
    ),
    (
        "disabled-with-mig-devices",
        entry_doc("devices: all", "mig-enabled: false", "mig-devices: {1g.5gb: 1}"),
        "cfg",
        0,
        "mig-devices",
        6,
        ('"mig-enabled" is false',),
    ),
    (
        "mig-devices-a-list",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices: [1g.5gb]"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("must be a mapping of profile names to counts",),
    ),
    (
        "all-counts-zero",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices: {1g.5gb: 0, 2g.10gb: 0}"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("all counts are 0",),
    ),
    (
        "count-string",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", "  1g.5gb: two"),
        "cfg",
        0,
        "mig-devices",
        7,
        ('count for "1g.5gb" must be a non-negative integer, got "two"',),
    ),
    (
        "count-bool",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices: {1g.5gb: true}"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("non-negative integer, got the boolean true",),
    ),
    (
        "count-negative",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices: {1g.5gb: -1, 2g.10gb: 1}"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("non-negative integer, got -1",),
    ),
    (
        "count-float",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices: {1g.5gb: 1.0}"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("non-negative integer, got the number 1.0",),
    ),
    (
        "count-null",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices: {1g.5gb: }"),
        "cfg",
        0,
        "mig-devices",
        6,
        ("non-negative integer",),
    ),
    (
        "profile-name-invalid",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", "  bogus: 1"),
        "cfg",
        0,
        "mig-devices",
        7,
        ('invalid MIG profile name "bogus"', "<C>c.<G>g.<GB>gb"),
    ),
    (
        "profile-name-plus-and-minus",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", '  "1g.5gb+me-gfx": 1'),
        "cfg",
        0,
        "mig-devices",
        7,
        ("both '+' and '-'",),
    ),
    (
        "profile-name-duplicate-attribute",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", '  "1g.5gb+me,me": 1'),
        "cfg",
        0,
        "mig-devices",
        7,
        ('"me" is repeated',),
    ),
    (
        "second-entry-located",
        HEAD + "    - devices: all\n      mig-enabled: false\n    - devices: all\n      mig-enabled: maybe\n",
        "cfg",
        1,
        "mig-enabled",
        7,
        ('got the string "maybe"',),
    ),
    ("syntax-error", "version: v1\nmig-configs:\n  a: [\n", None, None, None, 4, ("not valid YAML or JSON",)),
    ("two-documents", "version: v1\n---\nversion: v1\n", None, None, None, 2, ("not valid YAML or JSON",)),
    ("unknown-tag", "version: !custom v1\n", None, None, "version", 1, ("cannot read the value",)),
    ("float-config-name", "version: v1\nmig-configs:\n  1.5: []\n", None, None, "mig-configs", 3, ("must be a str",)),
]


@pytest.mark.parametrize(
    ("text", "config", "entry", "key", "line", "fragments"),
    [d[1:] for d in INVALID_DOCS],
    ids=[d[0] for d in INVALID_DOCS],
)
def test_load_invalid(
    text: str,
    config: str | None,
    entry: int | None,
    key: str | None,
    line: int | None,
    fragments: tuple[str, ...],
) -> None:
    with pytest.raises(SpecFormatError) as info:
        load_spec(text, "config.yaml")
    error = info.value
    message = str(error)
    assert message.startswith("config.yaml")
    assert (error.source, error.config, error.entry, error.key, error.line) == ("config.yaml", config, entry, key, line)
    if config is not None:
        assert f'config "{config}"' in message
    if entry is not None:
        assert f"entry {entry}" in message
    if key is not None:
        assert f'key "{key}"' in message
    if line is not None:
        assert f"(line {line})" in message
    for fragment in fragments:
        assert fragment in message


def test_error_message_shape() -> None:
    text = (
        "version: v1\nmig-configs:\n  all-balanced:\n    - devices: all\n      mig-enabled: false\n"
        "    - devices: all\n      mig-enabled: true\n      mig-devices:\n        1g.5gb: two\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(text, "config.yaml")
    assert str(info.value) == (
        'config.yaml: config "all-balanced" entry 1 (line 9): key "mig-devices": '
        'count for "1g.5gb" must be a non-negative integer, got "two"'
    )


def test_profile_name_error_in_config_is_located() -> None:
    with pytest.raises(ProfileNameError) as info:
        load_spec(entry_doc("devices: all", "mig-enabled: true", "mig-devices: {1g.5gb+: 1}"), "f.yaml")
    assert info.value.profile == "1g.5gb+"
    assert (info.value.config, info.value.entry, info.value.key, info.value.line) == ("cfg", 0, "mig-devices", 6)


# --------------------------------------------------------------------------------------------------------------------
# Warnings: legal but suspicious
# --------------------------------------------------------------------------------------------------------------------

# id, text, expected (config, entry, line) per warning, fragments of the messages
WARNING_DOCS: list[tuple[str, str, list[tuple[str | None, int | None, int]], tuple[str, ...]]] = [
    (
        "model-name-filter",
        entry_doc('device-filter: "A100-SXM4-40GB"', "devices: all", "mig-enabled: false"),
        [("cfg", 0, 4)],
        (
            'device-filter "A100-SXM4-40GB" in config "cfg" entry 0 (line 4) is not a PCI id and never matches any '
            'GPU; valid forms: "0x20B010DE" or "0x20B010DE:0x16C010DE"',
        ),
    ),
    (
        "unparseable-in-list",
        entry_doc('device-filter: ["0x20B010DE", "0x20B0:10DE:1"]', "devices: all", "mig-enabled: false"),
        [("cfg", 0, 4)],
        ('"0x20B0:10DE:1"',),
    ),
    (
        "empty-string-in-list",
        entry_doc('device-filter: [""]', "devices: all", "mig-enabled: false"),
        [("cfg", 0, 4)],
        ('device-filter ""',),
    ),
    ("empty-devices", entry_doc("devices: []", "mig-enabled: false"), [("cfg", 0, 4)], ("selects no GPU",)),
    ("negative-index", entry_doc("devices: [0, -2]", "mig-enabled: false"), [("cfg", 0, 4)], ("-2", "negative")),
    (
        "non-canonical-key",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", "  1c.1g.5gb: 1"),
        [("cfg", 0, 7)],
        ('it means "1g.5gb"',),
    ),
    (
        "same-profile-twice",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", '  "1g.5gb+gfx,me": 1', '  "1g.5gb+me,gfx": 1'),
        [("cfg", 0, 8), ("cfg", 0, 8)],
        ("counts are added", 'it means "1g.5gb+gfx,me"'),
    ),
    (
        "zero-count",
        entry_doc("devices: all", "mig-enabled: true", "mig-devices:", "  1g.5gb: 0", "  2g.10gb: 1"),
        [("cfg", 0, 7)],
        ("count 0 and is ignored",),
    ),
    (
        "repeated-config-name",
        "version: v1\nmig-configs:\n  a:\n    - {devices: all, mig-enabled: false}\n"
        "  a:\n    - {devices: [1], mig-enabled: false}\n",
        [(None, None, 5)],
        ('key "a" under "mig-configs" is repeated (lines 3 and 5); the later one wins',),
    ),
    (
        "boolean-config-name",
        "version: v1\nmig-configs:\n  yes:\n    - {devices: all, mig-enabled: false}\n",
        [(None, None, 3)],
        ('is read by YAML as the boolean true and so is named "true"; quote it to keep the name "yes"',),
    ),
    (
        "repeated-entry-key",
        entry_doc("devices: all", "devices: [1]", "mig-enabled: false"),
        [("cfg", 0, 5)],
        ('key "devices" in config "cfg" entry 0 is repeated',),
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "fragments"), [d[1:] for d in WARNING_DOCS], ids=[d[0] for d in WARNING_DOCS]
)
def test_warnings(text: str, where: list[tuple[str | None, int | None, int]], fragments: tuple[str, ...]) -> None:
    loaded = load_spec(text, "config.yaml")
    assert [(w.config, w.entry, w.line) for w in loaded.warnings] == where
    messages = "\n".join(str(w) for w in loaded.warnings)
    for fragment in fragments:
        assert fragment in messages


def test_repeated_key_last_wins() -> None:
    loaded = load_spec(entry_doc("devices: all", "devices: [1]", "mig-enabled: false"))
    assert loaded.spec.mig_configs["cfg"][0].devices == (1,)


def test_clean_config_has_no_warnings() -> None:
    assert load_spec(NVIDIA_EXAMPLE).warnings == ()
    assert load_spec(DEFAULT_EXCERPT).warnings == ()


# --------------------------------------------------------------------------------------------------------------------
# Round trips: load -> dump -> load gives an equal spec, in the same forms
# --------------------------------------------------------------------------------------------------------------------

ROUND_TRIP_DOCS = [d for d in VALID_DOCS if d[0] != "empty"] + [
    ("default-excerpt", DEFAULT_EXCERPT, load_spec(DEFAULT_EXCERPT).spec),
    (
        "odd-names",
        'version: v1\nmig-configs:\n  "true":\n    - devices: all\n      mig-enabled: false\n'
        '  "1.5":\n    - devices: all\n      mig-enabled: false\n'
        '  "with space: and colon":\n    - devices: all\n      mig-enabled: false\n'
        '  "ünïcode":\n    - device-filter: ["A100 \\"40GB\\""]\n      devices: all\n      mig-enabled: false\n',
        MigPartedSpec(
            "v1",
            {
                "true": (MigConfigEntry("all", False),),
                "1.5": (MigConfigEntry("all", False),),
                "with space: and colon": (MigConfigEntry("all", False),),
                "ünïcode": (MigConfigEntry("all", False, None, ('A100 "40GB"',)),),
            },
        ),
    ),
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("text", "expected"), [d[1:] for d in ROUND_TRIP_DOCS], ids=[d[0] for d in ROUND_TRIP_DOCS])
def test_round_trip(text: str, expected: MigPartedSpec, fmt: str) -> None:
    spec = load_spec(text).spec
    assert spec == expected
    dumped = dump_spec(spec, fmt)  # type: ignore[arg-type]
    again = load_spec(dumped).spec
    assert again == spec
    assert list(again.mig_configs) == list(spec.mig_configs)
    for name, entries in spec.mig_configs.items():
        for before, after in zip(entries, again.mig_configs[name], strict=True):
            assert type(before.device_filter) is type(after.device_filter)
            assert before.devices == after.devices
            assert list((before.mig_devices or {}).items()) == list((after.mig_devices or {}).items())
    assert dump_spec(again, fmt) == dumped  # type: ignore[arg-type]
    if fmt == "json":
        assert json.loads(dumped) == (spec_to_data(spec) or None)


def test_dump_yaml_forms() -> None:
    dumped = dump_spec(load_spec(DEFAULT_EXCERPT).spec)
    assert '    - device-filter: "0x20B710DE"\n' in dumped
    assert '    - device-filter: ["0x294110DE"]\n' in dumped
    assert "      devices: all\n" in dumped
    assert "      mig-devices: {}\n" in dumped
    assert '        "1g.24gb-me": 1\n' in dumped
    assert "  all-1g.10gb.me:\n" in dumped
    assert dumped.startswith(
        "version: v1\nmig-configs:\n  all-disabled:\n    - devices: all\n      mig-enabled: false\n"
    )


def test_dump_json_forms() -> None:
    data = json.loads(dump_spec(load_spec(DEFAULT_EXCERPT).spec, "json"))
    balanced = data["mig-configs"]["all-balanced"]
    assert balanced[3]["device-filter"] == "0x20B710DE"
    assert balanced[0]["device-filter"] == ["0x294110DE"]
    assert balanced[0]["devices"] == "all"
    assert "mig-devices" not in data["mig-configs"]["all-disabled"][0]
    assert list(data["mig-configs"]) == list(load_spec(DEFAULT_EXCERPT).spec.mig_configs)


@pytest.mark.parametrize(("fmt", "text"), [("yaml", ""), ("json", "null\n")], ids=["yaml", "json"])
def test_dump_zero_spec(fmt: str, text: str) -> None:
    zero = MigPartedSpec("", {})
    assert dump_spec(zero, fmt) == text  # type: ignore[arg-type]
    assert load_spec(text).spec == zero


def test_dump_unknown_format() -> None:
    with pytest.raises(SpecError):
        dump_spec(MigPartedSpec("v1", {}), "toml")  # type: ignore[arg-type]


def test_desired_devices_checks_constructed_names() -> None:
    with pytest.raises(ProfileNameError):
        MigConfigEntry("all", True, {"bogus": 1}).desired_devices()


def test_line_is_not_part_of_equality() -> None:
    assert MigConfigEntry("all", False, line=3) == MigConfigEntry("all", False, line=9)


# --------------------------------------------------------------------------------------------------------------------
# Config selection (GetSelectedMigConfig) and files
# --------------------------------------------------------------------------------------------------------------------

ONE = MigPartedSpec("v1", {"only": (MigConfigEntry("all", False),)})
MANY = load_spec(DEFAULT_EXCERPT).spec

SELECT_OK = [
    ("one-config-no-name", ONE, None, "only"),
    ("one-config-empty-name", ONE, "", "only"),
    ("one-config-by-name", ONE, "only", "only"),
    ("many-by-name", MANY, "all-balanced", "all-balanced"),
]


@pytest.mark.parametrize(("spec", "name", "selected"), [s[1:] for s in SELECT_OK], ids=[s[0] for s in SELECT_OK])
def test_select_config(spec: MigPartedSpec, name: str | None, selected: str) -> None:
    got, entries = select_config(spec, name)
    assert got == selected
    assert entries == spec.mig_configs[selected]


SELECT_ERRORS = [
    ("many-no-name", MANY, None, ("missing required flag 'selected-config'", "all-balanced"), None),
    ("unknown-with-suggestion", MANY, "all-balance", ('"all-balance"', "all-disabled, all-enabled"), "all-balanced"),
    ("unknown-no-suggestion", MANY, "zzz", ("not present",), None),
    ("no-configs", MigPartedSpec("v1", {}), None, ("no configs",), None),
    ("no-configs-named", MigPartedSpec("v1", {}), "x", ("(none)",), None),
]


@pytest.mark.parametrize(
    ("spec", "name", "fragments", "suggestion"), [s[1:] for s in SELECT_ERRORS], ids=[s[0] for s in SELECT_ERRORS]
)
def test_select_config_errors(
    spec: MigPartedSpec, name: str | None, fragments: tuple[str, ...], suggestion: str | None
) -> None:
    with pytest.raises(ConfigSelectionError) as info:
        select_config(spec, name)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.suggestion == suggestion
    assert info.value.available == tuple(spec.mig_configs)
    if suggestion:
        assert f'did you mean "{suggestion}"' in str(info.value)


def test_load_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(NVIDIA_EXAMPLE, encoding="utf-8")
    loaded = load_spec_file(str(path))
    assert isinstance(loaded, LoadedSpec)
    assert list(loaded.spec.mig_configs) == ["all-balanced"]
    path.write_text(entry_doc("devices: nope", "mig-enabled: false"), encoding="utf-8")
    with pytest.raises(SpecFormatError) as info:
        load_spec_file(str(path))
    assert str(info.value).startswith(f'{path}: config "cfg" entry 0 (line 4)')


def test_load_spec_file_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(NVIDIA_EXAMPLE))
    assert list(load_spec_file("-").spec.mig_configs) == ["all-balanced"]
    monkeypatch.setattr("sys.stdin", io.StringIO("version: v3\n"))
    with pytest.raises(SpecError, match=r"^<stdin> \(line 1\): key \"version\""):
        load_spec_file("-")


@pytest.mark.parametrize("kind", ["missing", "directory", "not-utf8"])
def test_load_spec_file_unreadable(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "config.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"version: v1\n\xff\xfe\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(str(path))
    assert str(info.value).startswith(f"{path}: ")
