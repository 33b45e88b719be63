"""Fixtures for integration tests: a kubesim API server per test, and the real kubectl/helm against it."""

from kubesim.testing import kubesim, kubesim_tools

__all__ = ["kubesim", "kubesim_tools"]
