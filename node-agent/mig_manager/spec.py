"""The mig-parted config format v1: models, parsing, validation, dumping and the MIG profile-name grammar.

Pure: no logging and no I/O (except `load_spec_file`). Parsing follows NVIDIA's mig-parted (api/spec/v1) and go-nvlib
(mig_profile.go) so that every config NVIDIA's tool accepts loads here, but it is stricter where NVIDIA silently does
something surprising only when that surprise is certainly a mistake; legal-but-suspicious input becomes a `SpecWarning`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mig_manager.errors import ProfileNameError

__all__ = [
    "ProfileName",
    "canonical_profile_name",
    "parse_profile_name",
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
