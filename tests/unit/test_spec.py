"""Table-driven tests of mig_manager.spec: every rule of the mig-parted config format v1 (mig-facts.md 1.1 to 1.3)."""

from __future__ import annotations

import pytest

from mig_manager.errors import ProfileNameError, SpecError
from mig_manager.spec import ProfileName, canonical_profile_name, parse_profile_name

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
