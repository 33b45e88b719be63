"""Property tests of the MIG profile-name grammar (go-nvlib): canonical names round trip, bad attributes never pass."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from mig_manager.errors import ProfileNameError
from mig_manager.spec import PciId, ProfileName, canonical_profile_name, parse_profile_name

LETTERS = string.ascii_letters
ATTRIBUTE_CHARS = string.ascii_letters + string.digits + "."

counts = st.integers(min_value=0, max_value=2**63 - 1)
small = st.integers(min_value=0, max_value=200)

# A valid attribute: starts with a letter, then letters, digits and dots, and does not end with a dot.
attributes = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(LETTERS),
    st.text(alphabet=ATTRIBUTE_CHARS, max_size=6),
    st.sampled_from(LETTERS + string.digits),
)
attributes = st.one_of(st.sampled_from(LETTERS), attributes)
attribute_sets = st.lists(attributes, unique=True, max_size=4).map(tuple)

profile_names = st.builds(
    ProfileName,
    compute=small,
    gpu=small,
    memory_gb=counts,
    attributes=attribute_sets,
    negative=st.booleans(),
)


@given(profile_names)
def test_canonical_name_round_trips(name: ProfileName) -> None:
    text = str(name)
    assert parse_profile_name(text) == name
    assert canonical_profile_name(text) == text
    assert str(parse_profile_name(text)) == text


@given(profile_names, st.data(), st.integers(0, 3), st.booleans())
def test_any_spelling_parses_to_the_same_profile(
    name: ProfileName, data: st.DataObject, zeros: int, explicit_compute: bool
) -> None:
    """Attribute order, leading zeros and `<G>c.<G>g` spellings all mean the same profile."""
    attrs = data.draw(st.permutations(name.attributes))
    pad = "0" * zeros
    head = f"{pad}{name.gpu}g.{pad}{name.memory_gb}gb"
    if explicit_compute or name.is_compute_instance:
        head = f"{pad}{name.compute}c." + head
    suffix = (("-" if name.negative else "+") + ",".join(attrs)) if attrs else ""
    assert parse_profile_name(head + suffix) == name


@given(profile_names)
def test_gi_name_is_a_gpu_instance(name: ProfileName) -> None:
    gi = name.gi_name()
    assert not gi.is_compute_instance
    assert (gi.gpu, gi.memory_gb, gi.attributes, gi.negative) == (
        name.gpu,
        name.memory_gb,
        name.attributes,
        name.negative,
    )
    assert parse_profile_name(str(gi)) == gi


# An invalid attribute: empty, starting with a digit or a dot, ending with a dot, containing a character outside
# [A-Za-z0-9.], or with surrounding spaces.
bad_attributes = st.one_of(
    st.just(""),
    st.builds(lambda d, rest: d + rest, st.sampled_from(string.digits), st.text(alphabet=ATTRIBUTE_CHARS, max_size=5)),
    st.builds(lambda rest: "." + rest, st.text(alphabet=ATTRIBUTE_CHARS, max_size=5)),
    st.builds(lambda a: a + ".", attributes),
    st.builds(
        lambda a, bad, b: a + bad + b,
        attributes,
        st.characters(exclude_characters=ATTRIBUTE_CHARS + "+-,", exclude_categories=["Cs"]),
        st.text(alphabet=ATTRIBUTE_CHARS, max_size=3),
    ),
    st.builds(lambda a, space: space + a, attributes, st.sampled_from([" ", "\t", "\n"])),
    st.builds(lambda a, space: a + space, attributes, st.sampled_from([" ", "\t", "\n"])),
)


@given(
    st.builds(lambda g, gb: f"{g}g.{gb}gb", small, counts),
    attribute_sets,
    bad_attributes,
    st.sampled_from("+-"),
)
def test_invalid_attribute_is_rejected(head: str, good: tuple[str, ...], bad: str, sign: str) -> None:
    attrs = [*good, bad]
    text = head + sign + ",".join(attrs)
    try:
        parse_profile_name(text)
    except ProfileNameError as error:
        assert error.profile == text
        assert "valid form" in str(error)
    else:
        raise AssertionError(f"{text!r} was accepted")
    try:
        ProfileName(1, 1, 5, (bad,))
    except ProfileNameError:
        pass
    else:
        raise AssertionError(f"attribute {bad!r} was accepted by the constructor")


@given(profile_names, attributes, st.sampled_from("+-"))
def test_repeated_attribute_is_rejected(name: ProfileName, attribute: str, sign: str) -> None:
    text = f"{name.gpu}g.{name.memory_gb}gb{sign}{attribute},{attribute}"
    try:
        parse_profile_name(text)
    except ProfileNameError as error:
        assert "repeated" in str(error)
    else:
        raise AssertionError(f"{text!r} was accepted")


@given(st.text(max_size=20))
def test_parse_never_crashes_and_accepted_names_are_stable(text: str) -> None:
    try:
        name = parse_profile_name(text)
    except ProfileNameError:
        return
    assert parse_profile_name(str(name)) == name


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))),
    st.booleans(),
)
def test_pci_id_round_trips(device: int, vendor: int, subsystem: tuple[int, int] | None, lower: bool) -> None:
    pci = PciId(device, vendor) if subsystem is None else PciId(device, vendor, *subsystem)
    text = str(pci)
    assert PciId.parse(text.lower() if lower else text) == pci
    assert pci.matches(pci) and pci.primary().matches(pci)
