"""mig-parted apply benchmark (issue 3, acceptance 7): wall time and backend calls of an apply on a simulated node.

Run from the repository root: `.venv/bin/python bench/parted.py`. Writes `bench/results/parted.json` and prints a
summary. On a fresh simulated host of 8 H100 80GB GPUs with MIG disabled:

1. `apply` of NVIDIA's generated `all-balanced` (mode change, then 4 GPU and 4 compute instances per GPU, read back);
2. a second, no-op `apply` of the same config (reads only).

Each is timed in-process (library call, `time.perf_counter`) over several fresh hosts, with the number of backend
calls per operation from the simulated backend's call log; once more through the `mig-parted` command line in a child
process, which adds interpreter start-up. Every simulated backend call takes the state file's lock and rewrites the
file, so the figures are dominated by that I/O, not by planning.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mig_manager.cli import parse_gpus
from mig_manager.devices.simulated import SimulatedBackend, init_host
from mig_manager.parted import apply_config, assert_config
from mig_manager.planner import device_types_of_node, generate_config
from mig_manager.spec import MigPartedSpec, dump_spec

RESULT_PATH = Path(__file__).resolve().parent / "results" / "parted.json"
GPUS = "H100-SXM5-80GBx8"
CONFIG = "all-balanced"
REPEATS = 7
MUTATING = {
    "set_mig_mode",
    "reset",
    "create_gpu_instance",
    "destroy_gpu_instance",
    "create_compute_instance",
    "destroy_compute_instance",
}


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 3),
        "min_ms": round(min(values) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
    }


def _timed_apply(backend: SimulatedBackend, spec: MigPartedSpec) -> tuple[float, list[str]]:
    started = time.perf_counter()
    result = apply_config(backend, spec, CONFIG)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"apply failed: {result.lines()}")
    return elapsed, list(backend.calls)


def _calls(calls: list[str]) -> dict[str, Any]:
    return {
        "total": len(calls),
        "mutating": sum(1 for c in calls if c in MUTATING),
        "by_op": dict(sorted(Counter(calls).items())),
    }


def run_library(workdir: Path, spec: MigPartedSpec) -> dict[str, Any]:
    first_times: list[float] = []
    noop_times: list[float] = []
    first_calls: list[str] = []
    noop_calls: list[str] = []
    for n in range(REPEATS):
        path = workdir / f"host{n}.json"
        init_host(path, GPUS)
        elapsed, first_calls = _timed_apply(SimulatedBackend(path), spec)
        first_times.append(elapsed)
        if not assert_config(SimulatedBackend(path), spec, CONFIG).ok:
            raise SystemExit("assert after apply failed")
        elapsed, noop_calls = _timed_apply(SimulatedBackend(path), spec)
        noop_times.append(elapsed)
        if any(c in MUTATING for c in noop_calls):
            raise SystemExit(f"the no-op apply changed something: {noop_calls}")
    first = {"wall": _stats(first_times), "calls": _calls(first_calls)}
    noop = {"wall": _stats(noop_times), "calls": _calls(noop_calls)}
    first["ms_per_call"] = round(first["wall"]["median_ms"] / len(first_calls), 3)
    noop["ms_per_call"] = round(noop["wall"]["median_ms"] / len(noop_calls), 3)
    return {"apply_from_disabled": first, "noop_apply": noop}


def run_cli(workdir: Path, spec: MigPartedSpec) -> dict[str, Any]:
    path = workdir / "cli-host.json"
    config = workdir / "config.yaml"
    config.write_text(dump_spec(spec), encoding="utf-8")
    init_host(path, GPUS)
    argv = [sys.executable, "-m", "mig_manager.cli", "apply", "-f", str(config), "-c", CONFIG, "--sim-state", str(path)]
    out: dict[str, Any] = {}
    for label in ("apply_from_disabled", "noop_apply"):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"mig-parted apply failed: {done.stderr}")
        out[label] = {"wall_ms": round(elapsed * 1000, 1), "stdout": done.stdout.strip()}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-o", "--output", type=Path, default=RESULT_PATH, help="where to write the JSON result")
    args = parser.parse_args(argv)

    started_at = datetime.now(UTC)
    t_start = time.perf_counter()
    spec = generate_config(device_types_of_node(parse_gpus(GPUS)))
    with tempfile.TemporaryDirectory(prefix="bench-parted-") as tmp:
        library = run_library(Path(tmp), spec)
        cli = run_cli(Path(tmp), spec)
    result = {
        "bench": "parted",
        "issue": 3,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t_start, 2),
        "machine": machine_info(),
        "parameters": {
            "gpus": GPUS,
            "config": CONFIG,
            "devices_per_gpu": {k: v for e in spec.mig_configs[CONFIG] for k, v in (e.mig_devices or {}).items()},
            "repeats": REPEATS,
            "backend": "simulated (file-locked JSON state, one transaction per call)",
        },
        "library": library,
        "cli": cli,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    first, noop = library["apply_from_disabled"], library["noop_apply"]
    print(f"wrote {args.output}")
    print(
        f"apply {CONFIG} on {GPUS} from MIG disabled: {first['wall']['median_ms']} ms median, "
        f"{first['calls']['total']} backend calls ({first['calls']['mutating']} mutating)"
    )
    print(
        f"no-op apply: {noop['wall']['median_ms']} ms median, {noop['calls']['total']} backend calls "
        f"({noop['calls']['mutating']} mutating)"
    )
    print(f"via the CLI (child process): {cli['apply_from_disabled']['wall_ms']} ms, {cli['noop_apply']['wall_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
