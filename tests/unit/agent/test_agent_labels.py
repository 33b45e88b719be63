"""NVIDIA's gate pause/restore values and which gates a reconfiguration touches."""

from __future__ import annotations

import pytest

from mig_manager.agent.labels import (
    CLIENT_GATE,
    GATE_LABELS,
    PAUSED,
    gates_of,
    pause_labels,
    paused_gates,
    paused_value,
    restore_labels,
    restored_value,
)


@pytest.mark.parametrize(
    ("value", "paused", "restored"),
    [
        ("false", "false", "false"),
        ("true", PAUSED, "true"),
        (PAUSED, PAUSED, "true"),
        ("", PAUSED, "true"),
        (None, PAUSED, "true"),
        ("anything", PAUSED, "true"),
    ],
)
def test_pause_and_restore_values(value: str | None, paused: str, restored: str) -> None:
    assert paused_value(value) == paused
    assert restored_value(value) == restored


def test_gates_of_always_has_the_five_gates_and_the_client_gate_only_when_set() -> None:
    assert list(gates_of({})) == list(GATE_LABELS)
    assert gates_of({})["nvidia.com/gpu.deploy.nvsm"] is None
    assert CLIENT_GATE not in gates_of({CLIENT_GATE: ""})
    assert gates_of({CLIENT_GATE: "true"})[CLIENT_GATE] == "true"
    assert gates_of({CLIENT_GATE: "false"})[CLIENT_GATE] == "false"


def test_pause_then_restore_round_trip() -> None:
    saved = gates_of({GATE_LABELS[0]: "true", GATE_LABELS[1]: "false", CLIENT_GATE: "true"})
    paused = pause_labels(saved)
    assert paused[GATE_LABELS[0]] == PAUSED
    assert paused[GATE_LABELS[1]] == "false"
    assert paused[GATE_LABELS[4]] == PAUSED  # missing nvsm: paused like NVIDIA
    restored = restore_labels(saved)
    assert restored[GATE_LABELS[0]] == "true"
    assert restored[GATE_LABELS[1]] == "false"
    assert restored[GATE_LABELS[4]] == "true"
    assert restored[CLIENT_GATE] == "true"


def test_paused_gates_finds_what_an_interrupted_run_left() -> None:
    labels = {GATE_LABELS[0]: PAUSED, GATE_LABELS[1]: "false", CLIENT_GATE: PAUSED, "other": PAUSED}
    assert paused_gates(labels) == {GATE_LABELS[0]: "true", CLIENT_GATE: "true"}
