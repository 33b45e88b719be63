"""Fault injection in the simulated backend: once, N times, after K, always, at random, per GPU, by environment."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from mig_manager.catalog import Placement
from mig_manager.devices import DeviceError, MigMode, NvmlCode, ResetError
from mig_manager.devices.faults import FaultSpecError, first_firing, parse_fault, parse_faults
from mig_manager.devices.simulated import (
    FAULTS_ENV,
    SimulatedBackend,
    SimulationError,
    add_fault,
    clear_faults,
    read_state,
)

MakeHost = Callable[..., SimulatedBackend]


def _outcomes(call: Callable[[], object], n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            call()
            out.append("ok")
        except DeviceError as exc:
            out.append(exc.code.name)
    return out


def test_once_by_default(make_host: MakeHost) -> None:
    backend = make_host("H100")
    add_fault(backend.path, "mig_mode", "GPU_IS_LOST")
    with pytest.raises(DeviceError) as exc:
        backend.mig_mode(0)
    assert (exc.value.op, exc.value.code, exc.value.gpu) == ("mig_mode", NvmlCode.GPU_IS_LOST, 0)
    assert "injected fault" in str(exc.value)
    assert _outcomes(lambda: backend.mig_mode(0), 3) == ["ok"] * 3
    assert read_state(backend.path)["faults"][0] | {} == {
        "op": "mig_mode",
        "code": "GPU_IS_LOST",
        "after": 0,
        "times": 1,
        "probability": 1.0,
        "seed": 0,
        "seen": 4,
        "fired": 1,
    }


def test_after_k_and_n_times(make_host: MakeHost) -> None:
    backend = make_host("H100")
    add_fault(backend.path, "processes", NvmlCode.TIMEOUT, after=2, times=3)
    assert _outcomes(lambda: backend.processes(0), 7) == ["ok", "ok", "TIMEOUT", "TIMEOUT", "TIMEOUT", "ok", "ok"]


def test_always(make_host: MakeHost) -> None:
    backend = make_host("H100")
    add_fault(backend.path, "gpus", "UNKNOWN", after=1, times=-1)
    assert _outcomes(backend.gpus, 5) == ["ok"] + ["UNKNOWN"] * 4
    clear_faults(backend.path)
    assert _outcomes(backend.gpus, 2) == ["ok", "ok"]
    assert read_state(backend.path)["faults"] == []


def test_star_counts_every_call_across_backend_objects(make_host: MakeHost) -> None:
    """The parted fault matrix: "the Kth backend call fails", whichever process or object makes it."""
    first = make_host("H100x2")
    add_fault(first.path, "*", "INSUFFICIENT_RESOURCES", after=3)
    first.gpus()
    first.mig_mode(0)
    second = SimulatedBackend(first.path)
    second.processes(1)
    with pytest.raises(DeviceError) as exc:
        second.set_mig_mode(1, MigMode.ENABLED)
    assert exc.value.op == "set_mig_mode" and exc.value.gpu == 1
    assert second.mig_mode(1).current is MigMode.DISABLED  # the failing call changed nothing
    assert second.set_mig_mode(1, MigMode.ENABLED) is NvmlCode.SUCCESS


def test_fault_changes_nothing(make_host: MakeHost) -> None:
    backend = make_host("H100", mig_enabled=True)
    gi = backend.create_gpu_instance(0, 0, Placement(0, 8))
    add_fault(backend.path, "destroy_gpu_instance", "IN_USE")
    add_fault(backend.path, "create_compute_instance", "INSUFFICIENT_RESOURCES")
    before = read_state(backend.path)["gpus"]
    with pytest.raises(DeviceError):
        backend.destroy_gpu_instance(0, gi.id)
    with pytest.raises(DeviceError):
        backend.create_compute_instance(0, gi.id, 4, Placement(0, 7))
    assert read_state(backend.path)["gpus"] == before
    backend.create_compute_instance(0, gi.id, 4, Placement(0, 7))


def test_gpu_filter(make_host: MakeHost) -> None:
    backend = make_host("A100-40GBx3")
    add_fault(backend.path, "reset", "IN_USE", gpu=2, times=-1)
    add_fault(backend.path, "gpus", "UNKNOWN", gpu=0)  # gpus() has no GPU: never matches
    backend.gpus()
    backend.reset([0, 1])
    with pytest.raises(ResetError) as exc:
        backend.reset([1, 2])
    assert exc.value.code is NvmlCode.IN_USE and exc.value.gpu == 2
    with pytest.raises(ResetError) as exc:
        backend.reset([2])
    assert exc.value.gpu == 2


def test_first_matching_fault_wins_and_all_count(make_host: MakeHost) -> None:
    backend = make_host("H100")
    add_fault(backend.path, "*", "TIMEOUT")
    add_fault(backend.path, "mig_mode", "GPU_IS_LOST")
    assert _outcomes(lambda: backend.mig_mode(0), 3) == ["TIMEOUT", "GPU_IS_LOST", "ok"]
    assert [(f["seen"], f["fired"]) for f in read_state(backend.path)["faults"]] == [(3, 1), (3, 1)]


def test_probability_is_seeded_and_reproducible(make_host: MakeHost) -> None:
    runs = []
    for _ in range(2):
        backend = make_host("H100")
        add_fault(backend.path, "processes", "TIMEOUT", times=-1, probability=0.3, seed=7)
        runs.append(_outcomes(lambda b=backend: b.processes(0), 200))
    assert runs[0] == runs[1]
    fired = runs[0].count("TIMEOUT")
    assert 30 < fired < 90
    other = make_host("H100")
    add_fault(other.path, "processes", "TIMEOUT", times=-1, probability=0.3, seed=8)
    assert _outcomes(lambda: other.processes(0), 200) != runs[0]
    never = make_host("H100")
    add_fault(never.path, "processes", "TIMEOUT", times=-1, probability=0.0)
    assert _outcomes(lambda: never.processes(0), 20) == ["ok"] * 20


def test_environment_faults(make_host: MakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_host("H100x2")
    faults = [{"op": "set_mig_mode", "code": "NVML_ERROR_NO_PERMISSION", "gpu": 1, "times": 2}]
    monkeypatch.setenv(FAULTS_ENV, json.dumps(faults))
    env_backend = SimulatedBackend(backend.path)
    assert env_backend.set_mig_mode(0, MigMode.ENABLED) is NvmlCode.SUCCESS
    assert _outcomes(lambda: env_backend.set_mig_mode(1, MigMode.ENABLED), 3) == ["NO_PERMISSION"] * 2 + ["ok"]
    assert env_backend.env_faults[0].fired == 2
    assert read_state(backend.path)["faults"] == []  # counted in the object, not the file
    assert backend.set_mig_mode(1, MigMode.DISABLED) is NvmlCode.SUCCESS  # created before the variable was set
    monkeypatch.setenv(FAULTS_ENV, "[{")
    with pytest.raises(SimulationError, match=FAULTS_ENV):
        SimulatedBackend(backend.path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"op": "explode", "code": "UNKNOWN"}, "not a backend operation"),
        ({"op": "*", "code": "SUCCESS"}, "not an NVML error"),
        ({"op": "*", "code": "BOGUS"}, "not an NVML error"),
        ({"op": "*", "code": "UNKNOWN", "after": -1}, "'after'"),
        ({"op": "*", "code": "UNKNOWN", "times": -2}, "'times'"),
        ({"op": "*", "code": "UNKNOWN", "probability": 2}, "'probability'"),
        ({"op": "*", "code": "UNKNOWN", "gpu": "0"}, "'gpu'"),
        ({"op": "*", "code": "UNKNOWN", "seed": 1.5}, "'seed'"),
        ({"op": "*", "code": "UNKNOWN", "when": 1}, "unknown keys when"),
        (["op"], "must be an object"),
    ],
)
def test_malformed_faults(raw: object, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(raw)


def test_malformed_fault_list_and_stored_faults(make_host: MakeHost) -> None:
    with pytest.raises(FaultSpecError, match="JSON list"):
        parse_faults({"op": "*"})
    assert parse_faults(None) == []
    backend = make_host("H100")
    with pytest.raises(FaultSpecError):
        add_fault(backend.path, "nope", "UNKNOWN")
    state = json.loads(backend.path.read_text())
    state["faults"] = [{"op": "*"}]
    backend.path.write_text(json.dumps(state))
    with pytest.raises(SimulationError, match="faults"):
        backend.gpus()


def test_first_firing_is_pure() -> None:
    faults = parse_faults([{"op": "reset", "code": "IN_USE", "gpu": 1}])
    assert first_firing(faults, "reset", [0]) is None
    assert faults[0].seen == 0
    fault = first_firing(faults, "reset", [0, 1])
    assert fault is faults[0] and fault.fired == 1 and fault.exhausted
