"""The e2e tests share one simulated cluster (kubesim's default topology) per module: install once, then relabel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("e2e_workflows")

from e2e_workflows import TOOLS, Workflows, cluster_config  # noqa: E402

from kubesim.server import KubeSim  # noqa: E402


@pytest.fixture(scope="module")
def workflows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workflows]:
    if not (TOOLS / "helm").exists() or not (TOOLS / "kubectl").exists():
        pytest.skip(f"helm and kubectl are missing in {TOOLS}: run `make tools`")
    home = tmp_path_factory.mktemp("e2e-home")
    with KubeSim(cluster_config()) as sim:
        yield Workflows(sim, Path(home))
