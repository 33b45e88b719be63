"""A config that failed permanently is tried again when the label comes back to it (A -> B -> A): "permanent" lasts
until the label or the config file changes, whatever B's outcome, and A succeeds once the cause is gone."""

from __future__ import annotations

import pytest
from agent_support import (
    DEFAULT_GATES,
    FakeDaemonSets,
    Node,
    ThreadAgent,
    reason_of,
    set_labels,
    wait_state,
)

from kubesim.testing import wait_for
from mig_manager.devices.simulated import SimulatedBackend, add_fault

A = "all-balanced"
CONFIG = "nvidia.com/mig.config"

# Between two visits to A the label names: a config that holds (success), an unknown config (failed), nothing.
BETWEEN = [("all-disabled", "success"), ("no-such-config", "failed"), (None, None)]
BETWEEN_IDS = ["B-succeeds", "B-fails", "label-removed"]


def _leave_and_return(core, runner: ThreadAgent, between: str | None, settled: str | None) -> int:  # type: ignore[no-untyped-def]
    """Label `between` (or remove the label), wait for the agent to settle it, then label A again; the runs so far."""
    set_labels(core, {CONFIG: between})
    if between is None:
        wait_for(lambda: _unlabelled(runner), timeout=30, what="a decision on the Node without the label")
    else:
        assert settled is not None
        wait_state(core, settled, config=between)
    runs = runner.agent.runs
    set_labels(core, {CONFIG: A})
    return runs


def _tried_again(runner: ThreadAgent, runs: int) -> None:
    """A new run has started (the state may read `failed` for A all along: the label removal does not change it)."""
    wait_for(lambda: runner.agent.runs > runs, timeout=15, what="a new run towards A after the label came back")


def _unlabelled(runner: ThreadAgent) -> bool:
    """A pass of the agent has decided on a version of the Node without the label (else the removal and the return to
    A could reach it as one change, which is no change)."""
    decided = runner.agent.decided or {}
    return CONFIG not in ((decided.get("metadata") or {}).get("labels") or {})


@pytest.mark.parametrize(("between", "settled"), BETWEEN, ids=BETWEEN_IDS)
def test_a_reboot_that_is_needed_is_asked_for_again_and_succeeds_once_fixed(
    kubesim, core, gpu_node: Node, between: str | None, settled: str | None
) -> None:  # type: ignore[no-untyped-def]
    """A needs a reboot without WITH_REBOOT (permanent). Back on A after B, the agent runs A again (and fails the same
    way); once the GPUs no longer need a reboot, A -> B -> A reaches success."""
    gpu_node.init(reboot_required=True)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        set_labels(core, {CONFIG: A})
        wait_state(core, "failed", config=A)
        assert "WITH_REBOOT is not set" in reason_of(core)
        assert runner.agent.runs == 1

        runs = _leave_and_return(core, runner, between, settled)
        _tried_again(runner, runs)
        labels = wait_state(core, "failed", config=A)
        assert runner.agent.runs == runs + 1
        assert "WITH_REBOOT is not set" in reason_of(core)
        assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES

        backend = SimulatedBackend(gpu_node.gpu_state)
        for index in range(8):
            backend.set_reboot_required(index, False)
        runs = _leave_and_return(core, runner, between, settled)
        _tried_again(runner, runs)
        labels = wait_state(core, "success", config=A)
        assert runner.agent.runs == runs + 1
        assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES


@pytest.mark.parametrize(("between", "settled"), BETWEEN, ids=BETWEEN_IDS)
def test_retries_exhausted_are_counted_afresh_after_the_label_came_back(
    kubesim, core, gpu_node: Node, between: str | None, settled: str | None
) -> None:  # type: ignore[no-untyped-def]
    """A GPU fault makes A give up (no retries allowed). Back on A after B, A is run again with a fresh count (it
    gives up after 1 attempt again, not 2); once the fault is gone, A -> B -> A reaches success."""
    add_fault(gpu_node.gpu_state, "set_mig_mode", "UNKNOWN", gpu=3, times=2)
    gpu_node.configure(max_retries=0)
    with FakeDaemonSets(kubesim), ThreadAgent(gpu_node) as runner:
        set_labels(core, {CONFIG: A})
        wait_state(core, "failed", config=A)
        assert "gave up after 1 attempts" in reason_of(core)

        runs = _leave_and_return(core, runner, between, settled)
        _tried_again(runner, runs)
        wait_state(core, "failed", config=A)
        assert runner.agent.runs == runs + 1
        assert "gave up after 1 attempts" in reason_of(core)

        runs = _leave_and_return(core, runner, between, settled)  # the fault has fired twice: it is gone
        _tried_again(runner, runs)
        labels = wait_state(core, "success", config=A)
        assert runner.agent.runs == runs + 1
        assert {k: labels[k] for k in DEFAULT_GATES} == DEFAULT_GATES
