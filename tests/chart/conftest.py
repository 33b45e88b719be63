"""Fixtures of the chart tests: kubesim and the real kubectl/helm against it (for the install tests)."""

from kubesim.testing import kubesim, kubesim_tools

__all__ = ["kubesim", "kubesim_tools"]
