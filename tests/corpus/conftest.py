"""Fixtures of the bad-input corpus: kubesim and the real kubectl/helm, as in tests/integration/."""

from kubesim.testing import kubesim, kubesim_tools

__all__ = ["kubesim", "kubesim_tools"]
