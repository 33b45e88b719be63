"""The one exception hierarchy of gpu_operator."""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error raised by gpu_operator."""


class PolicyError(OperatorError):
    """A ClusterPolicy spec does not parse into the supported model."""


class RenderError(OperatorError):
    """The manifests cannot be rendered from the policy (for example an incomplete image specification)."""


class InventoryError(OperatorError):
    """A node's GPU inventory annotation is malformed."""


class ApplyError(OperatorError):
    """The API server refused a write the operator needs."""
