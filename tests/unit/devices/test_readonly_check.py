"""scripts/gpu-readonly-check.py: read-only by construction, JSON comparable with the catalog, clear failures."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mig_manager.catalog import Placement, default_catalog
from mig_manager.devices import DeviceError, MigMode, NvmlCode
from mig_manager.devices.base import MUTATING_OPS, READ_ONLY_OPS
from mig_manager.devices.simulated import SimulatedBackend, init_host

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gpu-readonly-check.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_readonly_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MutationForbidden(SimulatedBackend):
    """A simulated host whose mutating methods fail the test if anything reaches them."""

    def _forbidden(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a read-only check called a mutating GPU operation")

    set_mig_mode = reset = create_gpu_instance = destroy_gpu_instance = _forbidden
    create_compute_instance = destroy_compute_instance = _forbidden


def _host(tmp_path: Path) -> Path:
    path = tmp_path / "host.json"
    models = ",".join(m.key for m in default_catalog().models)
    init_host(path, f"{models},0x1EB810DE")
    backend = SimulatedBackend(path)
    backend.set_mig_mode(3, MigMode.ENABLED)  # H100: at once
    gi = backend.create_gpu_instance(3, 9, Placement(4, 4))
    backend.create_compute_instance(3, gi.id, 2, Placement(0, 3))
    backend.add_process(0, 77)
    return path


def test_collect_only_reads(script: ModuleType, tmp_path: Path) -> None:
    backend = MutationForbidden(_host(tmp_path))
    result = script.collect(backend)
    assert set(backend.calls) <= set(READ_ONLY_OPS)
    assert {"gpus", "mig_mode", "profile_table", "gpu_instances", "processes"} <= set(backend.calls)
    gpus = result["gpus"]
    assert len(gpus) == len(default_catalog().models) + 1
    for entry in gpus[:-1]:  # every catalog model: the device (simulated) table equals the catalog's
        assert entry["errors"] == [] and entry["catalog_differences"] == [], entry["catalog_model"]
        model = default_catalog().lookup(entry["catalog_model"])
        assert [p["name"] for p in entry["profile_table"]["gpu_instance_profiles"]] == [
            str(p.name) for p in model.table.gpu_instance_profiles
        ]
    h100 = gpus[3]
    assert h100["mig_mode"] == {"current": "enabled", "pending": "enabled"}
    assert h100["instances"] == [
        {
            "id": 1,
            "profile_id": 9,
            "placement": "4:4",
            "compute_instances": [{"id": 0, "profile_id": 2, "placement": "0:3"}],
        }
    ]
    assert gpus[0]["processes"] == [77] and "instances" not in gpus[0]
    assert gpus[-1]["mig_capable"] is False and gpus[-1]["catalog_model"] is None and "profile_table" not in gpus[-1]
    json.dumps(result)


def test_read_only_wrapper_hides_mutations(script: ModuleType, tmp_path: Path) -> None:
    reader = script.ReadOnlyBackend(SimulatedBackend(_host(tmp_path)))
    for name in MUTATING_OPS:
        with pytest.raises(AttributeError, match="never changes a GPU"):
            getattr(reader, name)
    assert reader.gpus()


def test_errors_per_gpu_are_reported(script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.json"
    init_host(path, "H100x2")
    monkeypatch.setenv("MIG_SIM_FAULTS", json.dumps([{"op": "profile_table", "code": "GPU_IS_LOST", "gpu": 1}]))
    result = script.collect(SimulatedBackend(path))
    assert result["gpus"][0]["errors"] == []
    assert [e["code"] for e in result["gpus"][1]["errors"]] == ["GPU_IS_LOST"]


class NoGpus:
    def gpus(self) -> list[Any]:
        return []


class NoLibrary:
    def gpus(self) -> list[Any]:
        raise DeviceError("gpus", NvmlCode.LIBRARY_NOT_FOUND, "libnvidia-ml.so.1 not found")


def test_no_gpu_and_no_library(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert script.main([], backend=NoGpus()) == script.EXIT_NO_GPU
    assert "no NVIDIA GPU" in capsys.readouterr().err
    assert script.main([], backend=NoLibrary()) == script.EXIT_NO_LIBRARY
    err = capsys.readouterr().err
    assert "no NVIDIA GPU driver or NVML library" in err


def test_main_writes_json(script: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert script.main(["--sim-state", str(_host(tmp_path)), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["gpus"][3]["catalog_model"] == "H100-SXM5-80GB"


def _nvml_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_nvml_present(), reason="this machine has an NVIDIA driver")
def test_script_without_a_driver_exits_with_a_clear_message() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 3, run.stderr
    assert run.stdout == ""
    assert "no NVIDIA GPU driver or NVML library" in run.stderr
    assert "libnvidia-ml.so.1" in run.stderr


def test_script_runs_as_a_script(tmp_path: Path) -> None:
    path = _host(tmp_path)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--sim-state", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["gpus"][0]["catalog_model"] == "A100-SXM4-40GB"
