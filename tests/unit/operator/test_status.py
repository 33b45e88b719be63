"""ClusterPolicy status: state, the Ready/Error pair with reasons, Warning Events, the singleton rule."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_operator.status import (
    Observed,
    compute_status,
    daemonset_ready,
    ignored_status,
    select_active,
    status_differs,
    warning_events,
)

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"


def _ds(desired: int, ready: bool = True, generation: int = 1, strategy: str = "RollingUpdate") -> dict[str, Any]:
    n = desired if ready else 0
    return {
        "metadata": {"generation": generation},
        "spec": {"updateStrategy": {"type": strategy}},
        "status": {
            "desiredNumberScheduled": desired,
            "numberUnavailable": desired - n,
            "numberAvailable": n,
            "numberReady": n,
            "updatedNumberScheduled": desired,
            "observedGeneration": generation,
        },
    }


@pytest.mark.parametrize(
    ("ds", "ready"),
    [
        (None, False),
        ({"metadata": {"generation": 1}}, False),  # no status yet
        (_ds(0), True),
        (_ds(3), True),
        (_ds(3, ready=False), False),
        (_ds(3, strategy="OnDelete"), True),
        (_ds(3, ready=False, strategy="OnDelete"), False),
        ({**_ds(3), "metadata": {"generation": 2}}, False),  # not yet observed
    ],
)
def test_daemonset_ready(ds: dict[str, Any] | None, ready: bool) -> None:
    assert daemonset_ready(ds) is ready


def _observed(**kw: Any) -> Observed:
    values: dict[str, Any] = {
        "namespace": "gpu-operator",
        "generation": 3,
        "daemonsets": {"nvidia-mig-manager": _ds(2), "gpu-feature-discovery": _ds(2)},
        "gpu_nodes": 2,
    }
    values.update(kw)
    return Observed(**values)


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("kw", "state", "ready", "error"),
    [
        ({}, "ready", ("True", "Reconciled"), ("False", "Ready")),
        ({"gpu_nodes": 0}, "ready", ("True", "NoGPUNodes"), ("False", "Ready")),
        ({"unsupported": ["spec.toolkit"]}, "ready", ("True", "UnsupportedField"), ("False", "Ready")),
        (
            {"daemonsets": {"gpu-feature-discovery": _ds(2, ready=False)}},
            "notReady",
            ("False", "Error"),
            ("True", "OperandNotReady"),
        ),
        ({"mig_config_problem": "bad"}, "ready", ("False", "Error"), ("True", "MigConfigInvalid")),
        ({"error": "boom", "mig_config_problem": "bad"}, "notReady", ("False", "Error"), ("True", "ReconcileFailed")),
        (
            {"mig_config_problem": "bad", "daemonsets": {"x": None}},
            "notReady",
            ("False", "Error"),
            ("True", "MigConfigInvalid"),
        ),
    ],
)
def test_state_and_conditions(kw: dict[str, Any], state: str, ready: tuple[str, str], error: tuple[str, str]) -> None:
    status = compute_status(_observed(**kw), None, T0)
    assert status["state"] == state and status["namespace"] == "gpu-operator"
    assert _conditions(status) == {"Ready": ready, "Error": error}
    assert all(c["observedGeneration"] == 3 and c["lastTransitionTime"] == T0 for c in status["conditions"])


def test_operand_message_names_the_daemonsets() -> None:
    status = compute_status(_observed(daemonsets={"b": None, "a": _ds(1, ready=False), "c": _ds(1)}), None, T0)
    error = next(c for c in status["conditions"] if c["type"] == "Error")
    assert error["message"] == "ClusterPolicy is not ready; DaemonSets not ready: [a b]"


def test_transition_time_is_kept_while_status_holds() -> None:
    first = compute_status(_observed(), None, T0)
    again = compute_status(_observed(), first, T1)
    assert again == first and not status_differs(first, again)
    broken = compute_status(_observed(mig_config_problem="bad"), first, T1)
    assert {c["lastTransitionTime"] for c in broken["conditions"]} == {T1}
    assert status_differs(first, broken)
    # the message changes but the status does not: the transition time stays
    worse = compute_status(_observed(mig_config_problem="worse"), broken, "2026-01-01T00:02:00Z")
    assert {c["lastTransitionTime"] for c in worse["conditions"]} == {T1}


def test_warning_events_on_transitions_only() -> None:
    ok = compute_status(_observed(), None, T0)
    bad = compute_status(_observed(mig_config_problem="node n1: no"), ok, T1)
    assert warning_events(ok, bad) == [("MigConfigInvalid", "node n1: no")]
    assert warning_events(bad, bad) == []
    assert warning_events(bad, ok) == []
    not_ready = compute_status(_observed(daemonsets={"x": None}), ok, T1)
    assert warning_events(ok, not_ready) == []  # a rollout is not a warning
    unsupported = compute_status(_observed(unsupported=["spec.toolkit"]), ok, T1)
    assert warning_events(ok, unsupported)[0][0] == "UnsupportedField"
    assert warning_events(None, compute_status(_observed(error="x"), None, T0)) == [("ReconcileFailed", "x")]


def test_ignored_status() -> None:
    assert ignored_status({"state": "ready"}, "gpu-operator") == {"state": "ignored", "namespace": "gpu-operator"}


def test_select_active_oldest_then_lowest_name() -> None:
    a = {"metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    b = {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}}
    c = {"metadata": {"name": "0", "creationTimestamp": "2026-01-02T00:00:00Z"}}
    assert select_active([a, b, c]) is b
    assert select_active([c, a]) is a
    assert select_active([]) is None


def test_status_carries_the_observed_generation() -> None:
    status = compute_status(_observed(), None, T0)
    assert status["observedGeneration"] == _observed().generation
    assert all(c["observedGeneration"] == _observed().generation for c in status["conditions"])
    assert status_differs(status, {**status, "observedGeneration": status["observedGeneration"] + 1})
