#!/usr/bin/env python3
"""Read a real GPU node's MIG facts through NVML and print them as JSON, next to the catalog's view of each model.

Strictly read-only: it lists GPUs, MIG modes, profile tables with placements, existing GPU/compute instances and
processes. It never changes a MIG mode, creates or destroys an instance, or resets a GPU: the backend it uses is
wrapped so that only the read-only `GpuBackend` methods can be reached.

    python scripts/gpu-readonly-check.py [--output FILE] [--sim-state PATH]

`--sim-state` reads a simulated host instead (for tests and demos). Exit codes: 0 the JSON was printed (catalog
differences are reported, not failures); 2 usage; 3 no NVIDIA library or driver; 4 NVML sees no GPU; 1 any other
NVML failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import mig_manager  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node-agent"))

from mig_manager.catalog import default_catalog
from mig_manager.devices.base import READ_ONLY_OPS, DeviceError, GpuBackend, MigMode, NvmlCode
from mig_manager.devices.profiles import compare_with_catalog

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_LIBRARY, EXIT_NO_GPU = 0, 1, 2, 3, 4


class ReadOnlyBackend:
    """Only the read-only methods of a backend; anything else is an AttributeError."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        if name not in READ_ONLY_OPS:
            raise AttributeError(f"{name} is not a read-only GPU operation; this tool never changes a GPU")
        return getattr(self._backend, name)


class NoGpuError(Exception):
    pass


def _error(exc: DeviceError) -> dict[str, Any]:
    return {"op": exc.op, "code": exc.code.value, "message": str(exc)}


def collect(backend: GpuBackend | Any) -> dict[str, Any]:
    """Everything the check reports, read through the read-only methods only."""
    reader = ReadOnlyBackend(backend)
    catalog = default_catalog()
    gpus = reader.gpus()
    if not gpus:
        raise NoGpuError("NVML reports no NVIDIA GPU on this machine")
    out: list[dict[str, Any]] = []
    for gpu in gpus:
        model = catalog.by_pci_id(gpu.pci)
        entry: dict[str, Any] = {
            "index": gpu.index,
            "uuid": gpu.uuid,
            "pci_bus_id": gpu.pci_bus_id,
            "pci_id": str(gpu.pci.primary()),
            "pci_subsystem_id": str(gpu.pci).split(":", 1)[1] if gpu.pci.has_subsystem else None,
            "product_name": gpu.product_name,
            "memory_mib": gpu.memory_mib,
            "mig_capable": gpu.mig_capable,
            "catalog_model": model.key if model else None,
            "errors": [],
        }
        out.append(entry)
        try:
            entry["processes"] = reader.processes(gpu.index)
        except DeviceError as exc:
            entry["errors"].append(_error(exc))
        if not gpu.mig_capable:
            continue
        try:
            mode = reader.mig_mode(gpu.index)
            entry["mig_mode"] = {"current": mode.current.name.lower(), "pending": mode.pending.name.lower()}
            table = reader.profile_table(gpu.index)
            entry["profile_table"] = _table(table)
            if model is not None:
                entry["catalog_differences"] = compare_with_catalog(table, model)
            else:
                entry["catalog_differences"] = [f"PCI id {gpu.pci.primary()} is not in the catalog"]
            if mode.current is MigMode.ENABLED:
                entry["instances"] = [_instance(gi) for gi in reader.gpu_instances(gpu.index)]
        except DeviceError as exc:
            entry["errors"].append(_error(exc))
    return {"gpus": out}


def _table(table: Any) -> dict[str, Any]:
    return {
        "model": table.model,
        "compute_slices": table.compute_slices,
        "memory_slices": table.memory_slices,
        "gpu_instance_profiles": [
            {
                "name": str(p.name),
                "id": p.id,
                "constant": p.constant,
                "index": p.nvml_index,
                "slices": p.slices,
                "memory_mib": p.memory_mib,
                "multiprocessors": p.multiprocessors,
                "max_count": p.max_count,
                "placements": "{"
                + ",".join(str(pl.start) for pl in p.placements)
                + "}:"
                + (str(p.placements[0].size) if p.placements else "0"),
            }
            for p in table.gpu_instance_profiles
        ],
        "compute_instance_profiles": {
            str(g): {f"{c}c": ci.max_count for c, ci in sorted(cis.items())}
            for g, cis in sorted(table.compute_instance_profiles.items())
        },
    }


def _instance(gi: Any) -> dict[str, Any]:
    return {
        "id": gi.id,
        "profile_id": gi.profile_id,
        "placement": str(gi.placement),
        "compute_instances": [
            {"id": ci.id, "profile_id": ci.profile_id, "placement": str(ci.placement)} for ci in gi.compute_instances
        ],
    }


def main(argv: Sequence[str] | None = None, backend: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--output", "-o", help="write the JSON here instead of stdout")
    parser.add_argument("--sim-state", help="read a simulated host's state file instead of NVML")
    args = parser.parse_args(argv)
    if backend is None:
        if args.sim_state:
            from mig_manager.devices.simulated import SimulatedBackend

            backend = SimulatedBackend(args.sim_state)
        else:
            from mig_manager.devices.nvml import NvmlBackend

            backend = NvmlBackend()
    try:
        result = collect(backend)
    except NoGpuError as exc:
        print(f"gpu-readonly-check: {exc}", file=sys.stderr)
        return EXIT_NO_GPU
    except DeviceError as exc:
        if exc.code in (NvmlCode.LIBRARY_NOT_FOUND, NvmlCode.DRIVER_NOT_LOADED):
            print(f"gpu-readonly-check: no NVIDIA GPU driver or NVML library here: {exc}", file=sys.stderr)
            return EXIT_NO_LIBRARY
        print(f"gpu-readonly-check: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()
    text = json.dumps(result, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
