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
