"""The one exception hierarchy of mig_manager.

Every message says what was wrong, where (config, entry, key, GPU index and model) and what would be valid.
"""

from __future__ import annotations


class MigManagerError(Exception):
    """Base of every error raised by mig_manager."""


class SpecError(MigManagerError):
    """A mig-parted config file or profile name is malformed."""


class CatalogError(MigManagerError):
    """The GPU catalog data file is inconsistent, or a GPU model is unknown."""


class PlanError(MigManagerError):
    """A requested geometry cannot be planned on a GPU."""


class SpecFormatError(SpecError):
    """A config breaks a rule of the mig-parted format; carries where, so callers can point at it."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        config: str | None = None,
        entry: int | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.config = config
        self.entry = entry
        self.key = key
        self.line = line


class ProfileNameError(SpecFormatError):
    """A MIG profile name breaks the go-nvlib grammar (`<C>c.<G>g.<GB>gb+attr`)."""

    def __init__(
        self,
        message: str,
        *,
        profile: str,
        source: str | None = None,
        config: str | None = None,
        entry: int | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, source=source, config=config, entry=entry, key=key, line=line)
        self.profile = profile


class ConfigSelectionError(SpecError):
    """No config, or an unknown one, was selected from a spec."""

    def __init__(self, message: str, *, name: str | None, available: tuple[str, ...], suggestion: str | None) -> None:
        super().__init__(message)
        self.name = name
        self.available = available
        self.suggestion = suggestion
