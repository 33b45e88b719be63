"""Helpers shared by the mig-parted operation tests (imported by name; pytest puts this directory on sys.path)."""

from __future__ import annotations

import io
import sys

from mig_manager.cli import mig_parted_main, parse_gpus
from mig_manager.devices.simulated import SimulatedBackend
from mig_manager.planner import device_types_of_node, generate_config
from mig_manager.spec import MigPartedSpec, load_spec

MUTATING = {
    "set_mig_mode",
    "reset",
    "create_gpu_instance",
    "destroy_gpu_instance",
    "create_compute_instance",
    "destroy_compute_instance",
}


def generated(gpus: str) -> MigPartedSpec:
    """NVIDIA's generated configs for a node described like `--gpus`."""
    return generate_config(device_types_of_node(parse_gpus(gpus)))


def spec(text: str) -> MigPartedSpec:
    return load_spec(text).spec


def mutations(backend: SimulatedBackend) -> list[str]:
    return [c for c in backend.calls if c in MUTATING]


def fresh(backend: SimulatedBackend) -> SimulatedBackend:
    """A new backend over the same state file (an empty call log)."""
    return SimulatedBackend(backend.path)


def cli(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = mig_parted_main(argv, out=out, err=err)
    finally:
        sys.stdin = old
    return code, out.getvalue(), err.getvalue()
