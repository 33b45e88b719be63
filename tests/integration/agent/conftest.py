"""Fixtures for the agent's integration tests: kubesim with a GPU Node and a simulated host per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_support import DEFAULT_GATES, Node, core_api, create_node

from kubesim.server import KubeSim


@pytest.fixture
def core(kubesim: KubeSim):  # type: ignore[no-untyped-def]
    return core_api(kubesim)


@pytest.fixture
def gpu_node(kubesim: KubeSim, core, tmp_path: Path) -> Iterator[Node]:  # type: ignore[no-untyped-def]
    create_node(core, DEFAULT_GATES)
    yield Node(kubesim, tmp_path).init()
