"""The mig-parted config format v1: models, parsing, validation, dumping and the MIG profile-name grammar.

Pure: no logging and no I/O (except `load_spec_file`). Parsing follows NVIDIA's mig-parted (api/spec/v1) and go-nvlib
(mig_profile.go), so a config NVIDIA's tool accepts loads here and dumps back in the same forms. Legal but suspicious
input (a filter that never matches, a zero count, a repeated key) is a `SpecWarning`, never an error.

Where Go's JSON decoding silently turns a null into a zero value, we refuse instead, because the result is certainly not
what was meant: `mig-enabled: ~` (Go: false) and a null or fractional count (Go: 0, or 2 for 2.0) are errors. A null
`device-filter` is read as no filter and a null `mig-devices` as absent, exactly as NVIDIA does.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mig_manager.errors import ConfigSelectionError, ProfileNameError, SpecFormatError

__all__ = [
    "Devices",
    "LoadedSpec",
    "MigConfigEntry",
    "MigPartedSpec",
    "PciId",
    "ProfileName",
    "SpecWarning",
    "canonical_profile_name",
    "dump_spec",
    "load_spec",
    "load_spec_file",
    "parse_profile_name",
    "select_config",
    "spec_to_data",
]

# ---------------------------------------------------------------------------------------------------------------------
# Profile names (go-nvlib grammar)
# ---------------------------------------------------------------------------------------------------------------------

PROFILE_NAME_FORMS = (
    '"<G>g.<GB>gb" or "<C>c.<G>g.<GB>gb", optionally followed by "+attr[,attr...]" or "-attr[,attr...]" '
    '(for example "1g.10gb", "1c.2g.20gb", "1g.10gb+me", "1g.24gb-me")'
)

_MAX_INT = 2**63 - 1  # Go's Atoi range on 64-bit platforms; larger numbers are malformed there.
_DIGITS = re.compile(r"[0-9]+")
_ATTRIBUTE_CHARS = re.compile(r"[A-Za-z0-9.]*")


def _quote(text: str) -> str:
    """Quote a user-supplied string for a message, escaping what would otherwise be invisible."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in out) + '"'


def _attribute_problem(attribute: str) -> str | None:
    """Why an attribute breaks the grammar (go-nvlib parseMigProfileAttributes), or None when it is valid."""
    if attribute == "":
        return "an attribute is empty"
    if attribute.strip() != attribute:
        return f"attribute {_quote(attribute)} has leading or trailing spaces"
    if attribute[0].isascii() and attribute[0].isdigit():
        return f"attribute {_quote(attribute)} begins with a digit"
    if attribute[0] == "." or attribute[-1] == ".":
        return f"attribute {_quote(attribute)} begins or ends with a dot"
    if not _ATTRIBUTE_CHARS.fullmatch(attribute):
        return f"attribute {_quote(attribute)} may contain only letters, digits and dots"
    return None


def _attributes_problem(attributes: tuple[str, ...]) -> str | None:
    seen: set[str] = set()
    for attribute in attributes:
        problem = _attribute_problem(attribute)
        if problem is not None:
            return problem
        if attribute in seen:
            return f"attribute {_quote(attribute)} is repeated"
        seen.add(attribute)
    return None


@dataclass(frozen=True, order=True)
class ProfileName:
    """A parsed MIG profile name: `<C>c.<G>g.<GB>gb` plus optional `+attr,...` (or `-attr,...`).

    Attributes are kept sorted so that equal profiles compare and hash equal, whatever order they were written in
    (go-nvlib matches attributes as a set; mig-parted's assert compares raw strings, which we deliberately do not).
    A negative flag without attributes means nothing and is normalised to False.
    """

    compute: int
    gpu: int
    memory_gb: int
    attributes: tuple[str, ...] = ()
    negative: bool = False

    def __post_init__(self) -> None:
        for label, value in (("compute", self.compute), ("gpu", self.gpu), ("memory_gb", self.memory_gb)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
                raise ProfileNameError(
                    f"invalid MIG profile: {label} must be a non-negative integer, got {value!r}",
                    profile=repr(self),
                )
        attributes = tuple(self.attributes)
        problem = _attributes_problem(attributes)
        if problem is not None:
            raise ProfileNameError(f"invalid MIG profile attributes {attributes!r}: {problem}", profile=repr(self))
        object.__setattr__(self, "attributes", tuple(sorted(attributes)))
        object.__setattr__(self, "negative", bool(self.negative) and bool(attributes))

    @property
    def is_compute_instance(self) -> bool:
        """True for a compute-instance profile (`1c.3g.40gb`): fewer compute slices than the GPU instance has."""
        return self.compute != self.gpu

    def gi_name(self) -> ProfileName:
        """The GPU-instance profile this name lives in (`1c.3g.40gb` -> `3g.40gb`)."""
        return replace(self, compute=self.gpu)

    def __str__(self) -> str:
        suffix = ""
        if self.attributes:
            suffix = ("-" if self.negative else "+") + ",".join(self.attributes)
        if self.compute == self.gpu:
            return f"{self.gpu}g.{self.memory_gb}gb{suffix}"
        return f"{self.compute}c.{self.gpu}g.{self.memory_gb}gb{suffix}"


def _name_error(text: str, reason: str) -> ProfileNameError:
    return ProfileNameError(
        f"invalid MIG profile name {_quote(text)}: {reason}; valid form: {PROFILE_NAME_FORMS}", profile=text
    )


def _parse_field(text: str, part: str, suffix: str) -> int:
    """One `<N><suffix>` field, with Go's Atoi rules (ASCII decimal digits, leading zeros allowed)."""
    if part.strip() != part:
        raise _name_error(text, f"field {_quote(part)} has leading or trailing spaces")
    if not part.endswith(suffix):
        raise _name_error(text, f"field {_quote(part)} must be a number followed by {_quote(suffix)}")
    digits = part[: -len(suffix)]
    if not _DIGITS.fullmatch(digits) or int(digits) > _MAX_INT:
        raise _name_error(text, f"field {_quote(part)} must be a number followed by {_quote(suffix)}")
    return int(digits)


def parse_profile_name(text: str) -> ProfileName:
    """Parse a profile name exactly as go-nvlib's parseMigProfile does; raise ProfileNameError saying what is wrong.

    `1c.1g.5gb` is accepted (and canonicalises to `1g.5gb`), as are leading zeros (`01g.05gb`), since NVIDIA's
    grammar accepts both; only the format is checked here, never whether any GPU has the profile.
    """
    if not isinstance(text, str):
        raise _name_error(str(text), f"it must be a string, got {type(text).__name__}")
    if text == "":
        raise _name_error(text, "it is empty")
    positive = text.split("+", 1)
    negative = text.split("-", 1)
    if len(positive) == 2 and len(negative) == 2:
        raise _name_error(text, "it has both '+' and '-' attributes; use one or the other")
    parts = positive if len(positive) == 2 else negative
    head = parts[0]
    fields = head.split(".", 2)
    if len(fields) == 3:
        compute = _parse_field(text, fields[0], "c")
        gpu = _parse_field(text, fields[1], "g")
        memory_gb = _parse_field(text, fields[2], "gb")
    elif len(fields) == 2:
        gpu = _parse_field(text, fields[0], "g")
        memory_gb = _parse_field(text, fields[1], "gb")
        compute = gpu
    else:
        raise _name_error(text, f"expected 2 or 3 dot-separated fields before any attributes, got {_quote(head)}")
    attributes: tuple[str, ...] = ()
    if len(parts) == 2:
        attributes = tuple(parts[1].split(","))
        problem = _attributes_problem(attributes)
        if problem is not None:
            raise _name_error(text, problem)
    return ProfileName(compute, gpu, memory_gb, attributes, negative=len(negative) == 2)


def canonical_profile_name(text: str) -> str:
    """The canonical spelling of a profile name, the form hardware reports (`1c.1g.5gb+gfx,me` -> `1g.5gb+gfx,me`)."""
    return str(parse_profile_name(text))


# ---------------------------------------------------------------------------------------------------------------------
# PCI ids and device filters
# ---------------------------------------------------------------------------------------------------------------------

PCI_ID_FORMS = '"0x20B010DE" or "0x20B010DE:0x16C010DE"'

# Go's strconv.ParseUint(s, 0, 32): base prefixes, a leading 0 meaning octal, underscores only between digits.
_GO_UINT_FORMS = (
    (re.compile(r"0[xX](?:_?[0-9a-fA-F])+"), 16),
    (re.compile(r"0[oO](?:_?[0-7])+"), 8),
    (re.compile(r"0[bB](?:_?[01])+"), 2),
    (re.compile(r"0(?:_?[0-7])+"), 8),
    (re.compile(r"0|[1-9](?:_?[0-9])*"), 10),
)


def _parse_go_uint32(text: str) -> int | None:
    """An unsigned 32-bit integer in Go base-0 syntax, or None where Go's ParseUint would fail."""
    for pattern, base in _GO_UINT_FORMS:
        if pattern.fullmatch(text):
            digits = text.replace("_", "")
            if base != 10 and len(digits) > 1 and digits[1] in "xXoObB":
                digits = digits[2:]
            value = int(digits, base)
            return value if value <= 0xFFFFFFFF else None
    return None


def _check_u16(label: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise SpecFormatError(f"invalid PCI id: {label} must be an integer from 0 to 0xFFFF, got {value!r}")


@dataclass(frozen=True)
class PciId:
    """A PCI device id as read from config space, optionally with the subsystem ids (mig-parted types.DeviceID).

    As a device filter, a PciId without subsystem ids matches every GPU with the same device and vendor; one with
    subsystem ids matches only GPUs whose four ids are all equal.
    """

    device: int
    vendor: int
    subsystem_device: int | None = None
    subsystem_vendor: int | None = None

    def __post_init__(self) -> None:
        _check_u16("device", self.device)
        _check_u16("vendor", self.vendor)
        if (self.subsystem_device is None) != (self.subsystem_vendor is None):
            raise SpecFormatError("invalid PCI id: give both subsystem ids or neither")
        if self.subsystem_device is not None:
            _check_u16("subsystem_device", self.subsystem_device)
            _check_u16("subsystem_vendor", self.subsystem_vendor)

    @property
    def has_subsystem(self) -> bool:
        return self.subsystem_device is not None

    @classmethod
    def parse(cls, text: str) -> PciId | None:
        """Parse `<devicevendor>[:<subdevicesubvendor>]` (Go base-0 integers); None where NVIDIA's parser fails.

        NVIDIA turns an unparseable filter into the zero id, which never matches a GPU; None says the same.
        """
        if not isinstance(text, str):
            return None
        parts = text.split(":")
        if len(parts) > 2:
            return None
        values = [_parse_go_uint32(part) for part in parts]
        if any(value is None for value in values):
            return None
        primary = values[0]
        assert primary is not None
        subsystem = values[1] if len(values) == 2 else None
        return cls.from_device_vendor(primary, subsystem)

    @classmethod
    def from_device_vendor(cls, value: int, subsystem: int | None = None) -> PciId:
        """From the 32-bit forms `device << 16 | vendor` (and `subdevice << 16 | subvendor`), as NVML reports them."""
        for label, raw in (("value", value), ("subsystem", subsystem)):
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFFFFFFFF):
                raise SpecFormatError(f"invalid PCI id: {label} must be a 32-bit unsigned integer, got {raw!r}")
        if subsystem is None:
            return cls(value >> 16, value & 0xFFFF)
        return cls(value >> 16, value & 0xFFFF, subsystem >> 16, subsystem & 0xFFFF)

    def primary(self) -> PciId:
        """The same id without subsystem ids."""
        return PciId(self.device, self.vendor)

    def __str__(self) -> str:
        text = f"0x{self.device:04X}{self.vendor:04X}"
        if self.subsystem_device is not None and self.subsystem_vendor is not None:
            text += f":0x{self.subsystem_device:04X}{self.subsystem_vendor:04X}"
        return text

    def matches(self, gpu: PciId) -> bool:
        """Filter semantics: device and vendor must match; subsystem ids too when this filter names them."""
        if (self.device, self.vendor) != (gpu.device, gpu.vendor):
            return False
        if self.subsystem_device is None:
            return True
        return (self.subsystem_device, self.subsystem_vendor) == (gpu.subsystem_device, gpu.subsystem_vendor)


# ---------------------------------------------------------------------------------------------------------------------
# Config models
# ---------------------------------------------------------------------------------------------------------------------

Devices: TypeAlias = Literal["all"] | tuple[int, ...]


@functools.lru_cache(maxsize=4096)
def _parse_filter(text: str) -> PciId | None:
    """Filters are matched against every GPU for every entry: parse each distinct string once."""
    return PciId.parse(text)


@dataclass(frozen=True)
class MigConfigEntry:
    """One entry of a named config: which GPUs (device-filter and devices) get which MIG state.

    Keeps the forms as written (a string filter stays a string, raw profile keys) so that a config dumps back the way
    it was written; `desired_devices` gives the canonical view used for planning and comparing.
    """

    devices: Devices
    mig_enabled: bool
    mig_devices: Mapping[str, int] | None = None
    device_filter: str | tuple[str, ...] | None = None
    line: int | None = field(default=None, compare=False)

    def filters(self) -> tuple[str, ...]:
        """The filter strings; an absent or empty-string filter gives () (NVIDIA: matches every GPU)."""
        if self.device_filter is None or self.device_filter == "":
            return ()
        if isinstance(self.device_filter, str):
            return (self.device_filter,)
        return tuple(self.device_filter)

    def matches_filter(self, pci: PciId) -> bool:
        """Whether the device-filter admits a GPU: no filter admits all; an unparseable filter admits none."""
        filters = self.filters()
        if not filters:
            return True
        for text in filters:
            wanted = _parse_filter(text)
            if wanted is not None and wanted.matches(pci):
                return True
        return False

    def matches_index(self, index: int) -> bool:
        """Whether `devices` names the GPU index (`all`, or the index in the list of global indices)."""
        return self.devices == "all" or index in self.devices

    def selects(self, index: int, pci: PciId) -> bool:
        """Whether this entry applies to the GPU at global index `index` with PCI id `pci` (mig-facts 1.2)."""
        return self.matches_filter(pci) and self.matches_index(index)

    def desired_devices(self) -> dict[ProfileName, int]:
        """Canonical desired instances: parsed names, zero counts dropped, counts of equal names added.

        NVIDIA compares raw keys, so `1c.1g.5gb` or a zero count never asserts as applied; comparing this view instead
        makes such configs converge.
        """
        if not self.mig_enabled or not self.mig_devices:
            return {}
        desired: dict[ProfileName, int] = {}
        for key, count in self.mig_devices.items():
            if count:
                name = parse_profile_name(key)
                desired[name] = desired.get(name, 0) + count
        return desired


@dataclass(frozen=True)
class MigPartedSpec:
    """A whole mig-parted config file: the version and the named configs, in the order written."""

    version: str
    mig_configs: Mapping[str, tuple[MigConfigEntry, ...]]


@dataclass(frozen=True)
class SpecWarning:
    """Legal but suspicious input (for example a filter that never matches), reported without failing the load."""

    message: str
    config: str | None = None
    entry: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed spec and the warnings found while parsing it."""

    spec: MigPartedSpec
    warnings: tuple[SpecWarning, ...]


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------

VERSION = "v1"
_TOP_KEYS = ("version", "mig-configs")
_ENTRY_KEYS = ("device-filter", "devices", "mig-enabled", "mig-devices")
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_DEVICES_FORMS = '"all" or a list of GPU indices, e.g. [0, 1, 2, 3]'
_FILTER_FORMS = 'a quoted PCI id string or a list of them, e.g. "0x20B010DE" or ["0x20B010DE", "0x20B110DE"]'


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: Node) -> str:
    """What a YAML node is, in words, for 'got ...' in messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _STR:
        return f"the string {_quote(str(node.value))}"
    if node.tag == _NULL:
        return "nothing (null)"
    kinds = {_INT: "the integer", _BOOL: "the boolean", "tag:yaml.org,2002:float": "the number"}
    return f"{kinds.get(node.tag, 'the value')} {node.value}"


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {_quote(close[0])}?)" if close else ""


@dataclass
class _Where:
    """Where in the document a check is, so every error and warning can point at it."""

    source: str
    config: str | None = None
    entry: int | None = None

    def prefix(self, line: int | None) -> str:
        """`config.yaml: config "x" entry 1 (line 12):`, the start of every error message."""
        text = self.source
        if self.config is not None:
            text += f": config {_quote(self.config)}"
            if self.entry is not None:
                text += f" entry {self.entry}"
        if line is not None:
            text += f" (line {line})"
        return text + ":"

    def error(self, key: str | None, message: str, line: int | None) -> SpecFormatError:
        keypart = f" key {_quote(key)}:" if key is not None else ""
        return SpecFormatError(
            f"{self.prefix(line)}{keypart} {message}",
            source=self.source,
            config=self.config,
            entry=self.entry,
            key=key,
            line=line,
        )

    def subject(self, line: int | None) -> str:
        """`in config "x" entry 0 (line 7)`, the location phrase used inside warnings."""
        parts = []
        if self.config is not None:
            parts.append(f"in config {_quote(self.config)}")
        if self.entry is not None:
            parts.append(f"entry {self.entry}")
        if line is not None:
            parts.append(f"(line {line})")
        return " ".join(parts)


class _Loader:
    """Walks a composed YAML node tree, validating as it goes and recording warnings."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[SpecWarning] = []
        self._constructor = SafeConstructor()
        self._key_texts: dict[int, str] = {}  # by node id: each key is converted, and warned about, once

    def warn(self, where: _Where, message: str, line: int | None) -> None:
        self.warnings.append(SpecWarning(message, config=where.config, entry=where.entry, line=line))

    def scalar(self, node: Node, where: _Where, key: str | None) -> object:
        """The Python value of a scalar node, with YAML SafeLoader typing (so `yes` is a bool, `0x10` an int)."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise where.error(key, f"cannot read the value: {exc.problem}", _line(node)) from None

    def mapping(self, node: MappingNode, where: _Where, key: str | None) -> list[tuple[str, Node, Node]]:
        """The (key, key node, value node) pairs of a mapping, merge keys applied; a repeated key warns, last wins."""
        pairs: list[tuple[str, Node, Node]] = []
        seen: dict[str, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            text = self.key_text(key_node, where, key)
            if text in seen:
                self.warn(
                    where,
                    " ".join(
                        part
                        for part in (
                            f"key {_quote(text)}",
                            where.subject(None),
                            f"under {_quote(key)}" if key else "",
                        )
                        if part
                    )
                    + f" is repeated (lines {seen[text]} and {_line(key_node)}); the later one wins, as in NVIDIA's "
                    "mig-parted",
                    _line(key_node),
                )
            seen[text] = _line(key_node)
        try:
            self._constructor.flatten_mapping(node)
        except ConstructorError as exc:
            raise where.error(key, f"cannot apply a merge key: {exc.problem}", _line(node)) from None
        merged: dict[str, int] = {}
        for key_node, value_node in node.value:
            text = self.key_text(key_node, where, key)
            if text in merged:
                pairs[merged[text]] = (text, key_node, value_node)
            else:
                merged[text] = len(pairs)
                pairs.append((text, key_node, value_node))
        return pairs

    def key_text(self, node: Node, where: _Where, key: str | None) -> str:
        """A mapping key as text; integer and boolean keys become text the way sigs.k8s.io/yaml converts them."""
        cached = self._key_texts.get(id(node))
        if cached is not None:
            return cached
        text = self._key_text(node, where, key)
        self._key_texts[id(node)] = text
        return text

    def _key_text(self, node: Node, where: _Where, key: str | None) -> str:
        if isinstance(node, ScalarNode):
            if node.tag == _STR:
                return str(node.value)
            value = self.scalar(node, where, key)
            if isinstance(value, bool):
                text = "true" if value else "false"
                if node.value != text:
                    self.warn(
                        where,
                        f"key {node.value} {where.subject(_line(node))} is read by YAML as the boolean {text} and so "
                        f'is named "{text}"; quote it to keep the name {_quote(str(node.value))}'.replace("  ", " "),
                        _line(node),
                    )
                return text
            if isinstance(value, int):
                return str(value)
        raise where.error(key, f"a mapping key must be a string, got {_describe(node)}", _line(node))

    # -- top level ----------------------------------------------------------------------------------------------------

    def load(self, root: Node | None) -> MigPartedSpec:
        where = _Where(self.source)
        if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL):
            return MigPartedSpec(version="", mig_configs={})
        if not isinstance(root, MappingNode):
            raise where.error(
                None,
                f'the document must be a mapping with the keys "version" and "mig-configs", got {_describe(root)}',
                _line(root),
            )
        pairs = self.mapping(root, where, None)
        for key, key_node, _value in pairs:
            if key not in _TOP_KEYS:
                raise where.error(
                    key,
                    f'unexpected key{_suggest(key, _TOP_KEYS)}; valid keys are "version" and "mig-configs"',
                    _line(key_node),
                )
        values = {key: value for key, _key_node, value in pairs}
        if "version" not in values:
            raise where.error(None, f'missing required key "version"; it must be "{VERSION}"', _line(root))
        version_node = values["version"]
        version = self.scalar(version_node, where, "version") if isinstance(version_node, ScalarNode) else None
        if not isinstance(version, str) or (isinstance(version_node, ScalarNode) and version_node.tag != _STR):
            raise where.error(
                "version", f'must be the string "{VERSION}", got {_describe(version_node)}', _line(version_node)
            )
        if version != VERSION:
            raise where.error(
                "version",
                f'unknown version {_quote(version)}; the only valid version is "{VERSION}"',
                _line(version_node),
            )
        configs: dict[str, tuple[MigConfigEntry, ...]] = {}
        if "mig-configs" in values:
            configs = self.configs(values["mig-configs"], where)
        return MigPartedSpec(version=version, mig_configs=configs)

    def configs(self, node: Node, where: _Where) -> dict[str, tuple[MigConfigEntry, ...]]:
        key = "mig-configs"
        empty = 'at least one config is required, e.g. "all-disabled: [{devices: all, mig-enabled: false}]"'
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            raise where.error(key, empty, _line(node))
        if not isinstance(node, MappingNode):
            raise where.error(
                key, f"must be a mapping of config names to lists of entries, got {_describe(node)}", _line(node)
            )
        pairs = self.mapping(node, where, key)
        if not pairs:
            raise where.error(key, empty, _line(node))
        configs: dict[str, tuple[MigConfigEntry, ...]] = {}
        for name, key_node, value in pairs:
            config_where = _Where(self.source, config=name)
            if (isinstance(value, ScalarNode) and value.tag == _NULL) or (
                isinstance(value, SequenceNode) and not value.value
            ):
                raise config_where.error(
                    None,
                    "at least one entry is required (a list of entries with devices and mig-enabled)",
                    _line(key_node),
                )
            if not isinstance(value, SequenceNode):
                raise config_where.error(None, f"must be a list of entries, got {_describe(value)}", _line(value))
            configs[name] = tuple(
                self.entry(item, _Where(self.source, config=name, entry=index))
                for index, item in enumerate(value.value)
            )
        return configs

    # -- entries ------------------------------------------------------------------------------------------------------

    def entry(self, node: Node, where: _Where) -> MigConfigEntry:
        line = _line(node)
        if not isinstance(node, MappingNode):
            raise where.error(
                None,
                f'must be a mapping with the keys "devices" and "mig-enabled" (and optionally "device-filter" and '
                f'"mig-devices"), got {_describe(node)}',
                line,
            )
        pairs = self.mapping(node, where, None)
        for key, key_node, _value in pairs:
            if key not in _ENTRY_KEYS:
                raise where.error(
                    key,
                    f"unexpected key{_suggest(key, _ENTRY_KEYS)}; valid keys are "
                    + ", ".join(_quote(k) for k in _ENTRY_KEYS),
                    _line(key_node),
                )
        values = {key: value for key, _key_node, value in pairs}
        for required, hint in (("devices", _DEVICES_FORMS), ("mig-enabled", "true or false")):
            if required not in values:
                raise where.error(required, f"missing required key; valid values: {hint}", line)
        device_filter = self.device_filter(values["device-filter"], where) if "device-filter" in values else None
        devices = self.devices(values["devices"], where)
        mig_enabled = self.mig_enabled(values["mig-enabled"], where)
        mig_devices_node = values.get("mig-devices")
        mig_devices = self.mig_devices(mig_devices_node, where) if mig_devices_node is not None else None
        if mig_enabled and mig_devices is None:
            at = _line(mig_devices_node) if mig_devices_node is not None else line
            raise where.error(
                "mig-devices",
                'is required when "mig-enabled" is true; give the instances to create, e.g. {"1g.10gb": 7}, '
                "or {} for MIG mode with no instances",
                at,
            )
        if not mig_enabled and mig_devices:
            assert mig_devices_node is not None
            raise where.error(
                "mig-devices",
                'MIG devices are listed but "mig-enabled" is false; remove them (or use {}) or set mig-enabled: true',
                _line(mig_devices_node),
            )
        return MigConfigEntry(
            devices=devices,
            mig_enabled=mig_enabled,
            mig_devices=mig_devices,
            device_filter=device_filter,
            line=line,
        )

    def filter_string(self, node: Node, where: _Where) -> str:
        key = "device-filter"
        if isinstance(node, ScalarNode) and node.tag == _STR:
            text = str(node.value)
            if PciId.parse(text) is None:
                self.warn(
                    where,
                    f"device-filter {_quote(text)} {where.subject(_line(node))} is not a PCI id and never matches "
                    f"any GPU; valid forms: {PCI_ID_FORMS}",
                    _line(node),
                )
            return text
        hint = ""
        if isinstance(node, ScalarNode) and node.tag in (_INT, "tag:yaml.org,2002:float"):
            hint = f"; quote it: {_quote(str(node.value))} (unquoted, YAML reads it as a number)"
        raise where.error(
            key, f"a filter must be a string, got {_describe(node)}{hint}; valid: {_FILTER_FORMS}", _line(node)
        )

    def device_filter(self, node: Node, where: _Where) -> str | tuple[str, ...] | None:
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None  # NVIDIA reads null as the empty string: no filter
        if isinstance(node, SequenceNode):
            return tuple(self.filter_string(item, where) for item in node.value)
        return self.filter_string(node, where)

    def devices(self, node: Node, where: _Where) -> Devices:
        key = "devices"
        if isinstance(node, ScalarNode) and node.tag == _STR:
            if node.value == "all":
                return "all"
            raise where.error(key, f"invalid string {_quote(str(node.value))}; valid: {_DEVICES_FORMS}", _line(node))
        if not isinstance(node, SequenceNode):
            raise where.error(key, f"must be {_DEVICES_FORMS}, got {_describe(node)}", _line(node))
        indices: list[int] = []
        for item in node.value:
            value = self.scalar(item, where, key) if isinstance(item, ScalarNode) else None
            if item.tag != _INT or not isinstance(value, int) or isinstance(value, bool):
                raise where.error(key, f"a GPU index must be an integer, got {_describe(item)}", _line(item))
            if value < 0:
                self.warn(
                    where,
                    f"devices index {value} {where.subject(_line(item))} is negative and never matches any GPU",
                    _line(item),
                )
            indices.append(value)
        if not indices:
            self.warn(where, f"devices [] {where.subject(_line(node))} selects no GPU", _line(node))
        return tuple(indices)

    def mig_enabled(self, node: Node, where: _Where) -> bool:
        value = self.scalar(node, where, "mig-enabled") if isinstance(node, ScalarNode) else None
        if node.tag != _BOOL or not isinstance(value, bool):
            raise where.error("mig-enabled", f"must be true or false, got {_describe(node)}", _line(node))
        return value

    def mig_devices(self, node: Node, where: _Where) -> dict[str, int] | None:
        key = "mig-devices"
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        if not isinstance(node, MappingNode):
            raise where.error(
                key,
                f'must be a mapping of profile names to counts, e.g. {{"1g.10gb": 7}}, got {_describe(node)}',
                _line(node),
            )
        counts: dict[str, int] = {}
        key_lines: dict[str, int] = {}
        canonical: dict[ProfileName, str] = {}
        for name, key_node, value_node in self.mapping(node, where, key):
            try:
                profile = parse_profile_name(name)
            except ProfileNameError as exc:
                line = _line(key_node)
                raise ProfileNameError(
                    f"{where.prefix(line)} key {_quote(key)}: {exc}",
                    profile=name,
                    source=self.source,
                    config=where.config,
                    entry=where.entry,
                    key=key,
                    line=line,
                ) from None
            value = self.scalar(value_node, where, key) if isinstance(value_node, ScalarNode) else None
            if value_node.tag != _INT or not isinstance(value, int) or isinstance(value, bool) or value < 0:
                got = str(value_node.value) if value_node.tag == _INT else _describe(value_node)
                if value_node.tag == _STR:
                    got = _quote(str(value_node.value))
                raise where.error(
                    key, f"count for {_quote(name)} must be a non-negative integer, got {got}", _line(value_node)
                )
            if str(profile) != name:
                self.warn(
                    where,
                    f"mig-devices key {_quote(name)} {where.subject(_line(key_node))} is not in canonical form; it "
                    f"means {_quote(str(profile))} (NVIDIA's mig-parted compares names as written, so its assert "
                    "never matches it)",
                    _line(key_node),
                )
            if profile in canonical:
                self.warn(
                    where,
                    f"mig-devices keys {_quote(canonical[profile])} and {_quote(name)} "
                    f"{where.subject(_line(key_node))} name the same profile; their counts are added",
                    _line(key_node),
                )
            canonical.setdefault(profile, name)
            counts[name] = value
            key_lines[name] = _line(key_node)
        if counts and not any(counts.values()):
            raise where.error(
                key,
                "all counts are 0; give at least one positive count, or use {} for MIG mode with no instances",
                _line(node),
            )
        for name, count in counts.items():
            if count == 0:
                self.warn(
                    where,
                    f"mig-devices key {_quote(name)} {where.subject(key_lines[name])} has count 0 and is ignored "
                    "(NVIDIA's mig-parted assert never matches a zero count); remove it",
                    key_lines[name],
                )
        return counts


def _compose(text: str, source: str) -> Node | None:
    """Compose YAML (JSON is YAML) keeping line numbers; JSON indented with tabs is accepted like NVIDIA does."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        if "\t" in text and text.lstrip().startswith("{"):
            # Tabs are JSON whitespace but never legal inside JSON strings, so spaces are an exact substitute.
            try:
                return yaml.compose(text.replace("\t", " "), Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                pass
        mark = exc.problem_mark or exc.context_mark
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        raise SpecFormatError(
            f"{source}{line}: not valid YAML or JSON: {problem}",
            source=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecFormatError(f"{source}: not valid YAML or JSON: {exc}", source=source) from None


def load_spec(text: str, source: str = "<config>") -> LoadedSpec:
    """Parse and validate a mig-parted config (YAML or JSON); raise SpecError naming source, config, entry, key, line.

    An empty document is the zero spec (version "" and no configs), as in NVIDIA's mig-parted.
    """
    root = _compose(text, source)
    loader = _Loader(source)
    spec = loader.load(root)
    return LoadedSpec(spec=spec, warnings=tuple(loader.warnings))


def load_spec_file(path: str) -> LoadedSpec:
    """Read and parse a config file; `-` reads standard input."""
    if path == "-":
        source = "<stdin>"
        try:
            text = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecFormatError(f"{source}: cannot read the config: {exc}", source=source) from None
        return load_spec(text, source)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecFormatError(f"{path}: cannot read the config file: {exc.strerror or exc}", source=path) from None
    except UnicodeDecodeError as exc:
        raise SpecFormatError(f"{path}: the config file is not UTF-8 text: {exc.reason}", source=path) from None
    return load_spec(text, path)


# ---------------------------------------------------------------------------------------------------------------------
# Dumping
# ---------------------------------------------------------------------------------------------------------------------


def _entry_to_data(entry: MigConfigEntry) -> dict[str, object]:
    data: dict[str, object] = {}
    if entry.device_filter is not None:
        data["device-filter"] = (
            entry.device_filter if isinstance(entry.device_filter, str) else list(entry.device_filter)
        )
    data["devices"] = "all" if entry.devices == "all" else list(entry.devices)
    data["mig-enabled"] = entry.mig_enabled
    if entry.mig_devices is not None:
        data["mig-devices"] = dict(entry.mig_devices)
    return data


def spec_to_data(spec: MigPartedSpec) -> dict[str, object]:
    """Plain data (dicts, lists, str, int, bool) in the same forms as written, ready for JSON or YAML."""
    if spec.version == "" and not spec.mig_configs:
        return {}
    data: dict[str, object] = {"version": spec.version}
    if spec.mig_configs:
        data["mig-configs"] = {
            name: [_entry_to_data(entry) for entry in entries] for name, entries in spec.mig_configs.items()
        }
    return data


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+\-]*")
_GO_YAML_NUMBER = re.compile(r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _yaml_str(text: str) -> str:
    """A string as a YAML scalar: plain when every YAML reader (PyYAML, go-yaml) reads it back as that string."""
    if (
        _PLAIN.fullmatch(text)
        and text.lower() not in _YAML11_WORDS
        and not _GO_YAML_NUMBER.fullmatch(text)
        and yaml.safe_load(text) == text
    ):
        return text
    return json.dumps(text)


def _dump_yaml_lines(spec: MigPartedSpec) -> Iterator[str]:
    yield f"version: {_yaml_str(spec.version)}"
    if not spec.mig_configs:
        return
    yield "mig-configs:"
    for position, (name, entries) in enumerate(spec.mig_configs.items()):
        if position:
            yield ""
        yield f"  {_yaml_str(name)}:"
        for entry in entries:
            lines: list[str] = []
            if entry.device_filter is not None:
                if isinstance(entry.device_filter, str):
                    lines.append(f"device-filter: {json.dumps(entry.device_filter)}")
                else:
                    lines.append("device-filter: [" + ", ".join(json.dumps(f) for f in entry.device_filter) + "]")
            devices = "all" if entry.devices == "all" else "[" + ", ".join(str(i) for i in entry.devices) + "]"
            lines.append(f"devices: {devices}")
            lines.append(f"mig-enabled: {'true' if entry.mig_enabled else 'false'}")
            if entry.mig_devices is not None:
                if not entry.mig_devices:
                    lines.append("mig-devices: {}")
                else:
                    lines.append("mig-devices:")
                    lines.extend(f"  {json.dumps(key)}: {count}" for key, count in entry.mig_devices.items())
            yield f"    - {lines[0]}"
            yield from (f"      {line}" for line in lines[1:])


def dump_spec(spec: MigPartedSpec, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """Serialise a spec in the forms it was written in (string filters, `devices: all`, config order).

    The YAML looks like NVIDIA's shipped config (block style, flow lists, quoted filters). The zero spec dumps as an
    empty YAML document or JSON `null`, the only forms that load back as the zero spec.
    """
    if fmt == "json":
        data = spec_to_data(spec)
        return (json.dumps(data, indent=2) if data else "null") + "\n"
    if fmt != "yaml":
        raise SpecFormatError(f'unknown output format {_quote(str(fmt))}; valid: "yaml" or "json"')
    if spec.version == "" and not spec.mig_configs:
        return ""
    return "\n".join(_dump_yaml_lines(spec)) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------------------------------


def select_config(spec: MigPartedSpec, name: str | None) -> tuple[str, tuple[MigConfigEntry, ...]]:
    """The named config, by NVIDIA's GetSelectedMigConfig rules: without a name, only a file with one config works."""
    available = tuple(spec.mig_configs)
    if not name:
        if len(available) == 1:
            return available[0], spec.mig_configs[available[0]]
        if not available:
            raise ConfigSelectionError(
                "the config file has no configs to select", name=name, available=available, suggestion=None
            )
        raise ConfigSelectionError(
            "missing required flag 'selected-config' when more than one config available; choose one of: "
            + ", ".join(available),
            name=name,
            available=available,
            suggestion=None,
        )
    if name in spec.mig_configs:
        return name, spec.mig_configs[name]
    close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.6)
    suggestion = close[0] if close else None
    hint = f"; did you mean {_quote(suggestion)}?" if suggestion else ""
    hint += ";"
    listing = ", ".join(available) if available else "(none)"
    raise ConfigSelectionError(
        f"selected mig-config not present: {_quote(name)}{hint} available configs: {listing}",
        name=name,
        available=available,
        suggestion=suggestion,
    )


# ---------------------------------------------------------------------------------------------------------------------
# GPU clients file (NVIDIA's clients.yaml): the host services the agent stops while MIG changes.

GPU_CLIENTS_KEYS = ("version", "systemd-services")


def parse_gpu_clients(text: str, source: str = "clients.yaml") -> list[str]:
    """The `systemd-services` of a GPU clients file (`version: v1`, `systemd-services: [unit, ...]`).

    NVIDIA's parser ignores anything it does not know, so a misspelt key or a bare list silently stops no service and
    the GPU stays busy through a MIG change; here both are errors. An empty file lists no services.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecFormatError(f"{source}: not valid YAML: {exc}", source=source) from None
    if doc is None:
        return []
    example = 'e.g. "version: v1" and "systemd-services: [nvsm.service, nvidia-dcgm.service]"'
    if not isinstance(doc, dict):
        raise SpecFormatError(
            f"{source}: must be a mapping with the keys {', '.join(GPU_CLIENTS_KEYS)}, got a {type(doc).__name__}; "
            f"{example}",
            source=source,
        )
    unknown = sorted(str(k) for k in doc if k not in GPU_CLIENTS_KEYS)
    if unknown:
        raise SpecFormatError(
            f"{source}: unknown key {', '.join(repr(k) for k in unknown)}; valid keys: {', '.join(GPU_CLIENTS_KEYS)}",
            source=source,
        )
    services = doc.get("systemd-services")
    if services is None:
        return []
    if not isinstance(services, list) or not all(isinstance(s, str) and s.strip() for s in services):
        raise SpecFormatError(f"{source}: systemd-services must be a list of unit names, {example}", source=source)
    return list(services)
