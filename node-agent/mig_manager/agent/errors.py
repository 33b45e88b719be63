"""Errors of the node agent (part of mig_manager's one hierarchy)."""

from __future__ import annotations

from ..errors import MigManagerError


class AgentError(MigManagerError):
    """Base of the agent's errors."""


class SettingsError(AgentError):
    """A flag or environment variable is missing or malformed (the agent exits 1 at start)."""


class JournalError(AgentError):
    """The journal annotation on the Node cannot be read."""


class HostError(AgentError):
    """A host operation (systemd unit, state file, reboot) failed."""


class TransientError(AgentError):
    """A failure worth retrying with back-off: API errors, timeouts, GPUs in use."""


class PermanentError(AgentError):
    """A failure that stays until the label or the config changes: unknown or infeasible config, reboot needed."""
