"""Checkpoint files (mig-facts 2.6): NVIDIA's field names, round trips, bad files with clear messages, and restores
that do not fit the node."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from parted_support import cli, fresh, generated, mutations

from mig_manager.catalog import Placement
from mig_manager.devices.base import MigMode
from mig_manager.devices.simulated import SimulatedBackend
from mig_manager.parted import (
    CheckpointError,
    CiState,
    GiState,
    GpuState,
    NodeState,
    Outcome,
    apply_config,
    dump_state,
    fetch_state,
    load_state,
    restore_state,
)

STATE = NodeState(
    (
        GpuState(
            "GPU-a",
            0,
            MigMode.ENABLED,
            (
                GiState(9, Placement(4, 4), (CiState(2, Placement(0, 3)),)),
                GiState(19, Placement(0, 1), (CiState(0, Placement(0, 1)),)),
            ),
        ),
        GpuState("GPU-b", 1, MigMode.DISABLED),
    )
)


def test_json_uses_nvidias_field_names_and_round_trips() -> None:
    data = json.loads(dump_state(STATE))
    assert data["Version"] == "v1"
    device = data["MigState"]["Devices"][0]
    assert set(device) == {"UUID", "Index", "MigMode", "GpuInstances"}
    assert device["MigMode"] == 1
    assert device["GpuInstances"][0] == {
        "ProfileID": 9,
        "Placement": {"Start": 4, "Size": 4},
        "ComputeInstances": [{"ProfileID": 2, "EngProfileID": 0, "Placement": {"Start": 0, "Size": 3}}],
    }
    assert load_state(dump_state(STATE)) == STATE


def _bad(mutate: Callable[[dict], None]) -> str:
    data = json.loads(dump_state(STATE))
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "cp.json: not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ("[]", "cp.json: checkpoint: must be an object"),
        (_bad(lambda d: d.update(Version="v2")), 'cp.json: Version: unknown version "v2"; expected "v1"'),
        (_bad(lambda d: d.pop("MigState")), "cp.json: checkpoint: missing key 'MigState'"),
        (_bad(lambda d: d["MigState"]["Devices"][0].pop("UUID")), "cp.json: MigState.Devices[0]: missing key 'UUID'"),
        (
            _bad(lambda d: d["MigState"]["Devices"][0].update(MigMode=2)),
            "cp.json: MigState.Devices[0].MigMode: must be 0 (disabled) or 1 (enabled), got 2",
        ),
        (
            _bad(lambda d: d["MigState"]["Devices"][0]["GpuInstances"][0]["Placement"].pop("Size")),
            "cp.json: MigState.Devices[0].GpuInstances[0].Placement: missing key 'Size'",
        ),
        (
            _bad(lambda d: d["MigState"]["Devices"][0]["GpuInstances"][0].update(ProfileID="9")),
            'cp.json: MigState.Devices[0].GpuInstances[0].ProfileID: must be a non-negative integer, got "9"',
        ),
        (
            _bad(lambda d: d["MigState"]["Devices"][1].update(UUID="GPU-a")),
            "cp.json: MigState.Devices[1].UUID: GPU-a appears twice",
        ),
        (
            _bad(
                lambda d: d["MigState"]["Devices"][1].update(GpuInstances=d["MigState"]["Devices"][0]["GpuInstances"])
            ),
            "cp.json: MigState.Devices[1]: has GPU instances but MigMode 0 (disabled)",
        ),
        (
            _bad(lambda d: d["MigState"]["Devices"][0]["GpuInstances"][0]["ComputeInstances"][0].pop("Placement")),
            "cp.json: MigState.Devices[0].GpuInstances[0].ComputeInstances[0]: missing key 'Placement'",
        ),
    ],
)
def test_bad_checkpoint_files_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(CheckpointError) as info:
        load_state(text, "cp.json")
    assert str(info.value).startswith(message), str(info.value)


def test_restore_checks_the_checkpoint_against_the_node_first(make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x2")
    result = restore_state(backend, STATE)
    assert result.outcome == Outcome.FAILED
    assert result.message.startswith("the checkpoint does not fit this node: checkpoint GPU GPU-a is not on this node")
    mine = fetch_state(fresh(backend))
    wrong = NodeState(
        (
            GpuState(
                mine.devices[0].uuid, 0, MigMode.ENABLED, (GiState(9, Placement(3, 4), (CiState(2, Placement(0, 3)),)),)
            ),
        )
    )
    result = restore_state(fresh(backend), wrong)
    assert "GPU 0 (H100-SXM5-80GB): 3g.40gb cannot be placed at 3:4 (possible: 0:4, 4:4)" in result.message
    unknown = NodeState((GpuState(mine.devices[0].uuid, 0, MigMode.ENABLED, (GiState(99, Placement(0, 1)),)),))
    result = restore_state(fresh(backend), unknown)
    assert "GPU-instance profile ID 99 does not exist on this GPU" in result.message
    assert mutations(backend) == []


def test_checkpoint_and_restore_through_the_cli(tmp_path: Path, make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("A100-40GBx2")
    configs = generated("A100-40GBx2")
    assert apply_config(backend, configs, "all-balanced").ok
    checkpoint = tmp_path / "checkpoint.json"
    state = str(backend.path)
    code, out, err = cli(["checkpoint", "-f", str(checkpoint), "--sim-state", state])
    assert code == 0, err
    assert load_state(checkpoint.read_text()) == fetch_state(fresh(backend))
    code, out, _ = cli(["checkpoint", "-f", "-", "--sim-state", state])
    assert code == 0 and load_state(out) == fetch_state(fresh(backend))

    assert apply_config(fresh(backend), configs, "all-disabled").ok
    code, out, err = cli(["restore", "-f", str(checkpoint), "--sim-state", state])
    assert code == 0, err
    assert out == "MIG state restored successfully\n"
    assert dump_state(fetch_state(fresh(backend))) == checkpoint.read_text()

    checkpoint.write_text("{}")
    code, out, err = cli(["restore", "-f", str(checkpoint), "--sim-state", state])
    assert code == 2
    assert err == f"error: {checkpoint}: checkpoint: missing key 'Version'\n"
    code, _, err = cli(["restore", "-f", str(tmp_path / "missing.json"), "--sim-state", state])
    assert code == 2 and "cannot read the checkpoint file" in err
    code, _, err = cli(["restore", "--sim-state", state])
    assert code == 2 and "missing required flag -f/--checkpoint-file" in err
