"""Shared fixtures of the mig-parted operation tests: simulated hosts and generated configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mig_manager.devices.simulated import FAULTS_ENV, SimulatedBackend, init_host


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        FAULTS_ENV,
        "MIG_SIM_STATE",
        "MIG_PARTED_BACKEND",
        "MIG_PARTED_CONFIG_FILE",
        "MIG_PARTED_SELECTED_CONFIG",
        "MIG_PARTED_HOOKS_FILE",
        "MIG_PARTED_SKIP_RESET",
        "MIG_PARTED_MODE_CHANGE_ONLY",
        "MIG_PARTED_VALID_CONFIG",
        "MIG_PARTED_OUTPUT_FORMAT",
        "MIG_PARTED_CONFIG_LABEL",
        "MIG_PARTED_CHECKPOINT_FILE",
        "MIG_PARTED_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_host(tmp_path: Path) -> Callable[..., SimulatedBackend]:
    """`make_host("H100x2", mig_enabled=True)` -> a backend over a fresh state file."""
    counter = iter(range(100000))

    def make(gpus: str, **kwargs: bool) -> SimulatedBackend:
        path = tmp_path / f"host{next(counter)}.json"
        init_host(path, gpus, **kwargs)
        return SimulatedBackend(path)

    return make
