"""Shared fixtures of the device-layer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mig_manager.devices.simulated import FAULTS_ENV, SimulatedBackend, init_host


@pytest.fixture(autouse=True)
def _no_env_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULTS_ENV, raising=False)


@pytest.fixture
def make_host(tmp_path: Path) -> Callable[..., SimulatedBackend]:
    """`make_host("H100x2", mig_enabled=True)` -> a backend over a fresh state file."""
    counter = iter(range(1000))

    def make(gpus: str, **kwargs: bool) -> SimulatedBackend:
        path = tmp_path / f"host{next(counter)}.json"
        init_host(path, gpus, **kwargs)
        return SimulatedBackend(path)

    return make
