"""Properties of the pure core over generated node states (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mig_manager.agent.decide import Assessment, Check, Kind, Observed, Settle, decide, settle_patch
from mig_manager.agent.journal import Journal, Phase
from mig_manager.agent.labels import (
    CLIENT_GATE,
    CONFIG_LABEL,
    GATE_LABELS,
    JOURNAL_ANNOTATION,
    PAUSED,
    REASON_ANNOTATION,
    STATE_LABEL,
    STATES,
    gates_of,
    pause_labels,
)

GATES = (*GATE_LABELS, CLIENT_GATE)
values = st.sampled_from(["true", "false", PAUSED, ""])
gate_labels = st.dictionaries(st.sampled_from(GATES), values)
states = st.one_of(st.none(), st.sampled_from(STATES))


def merged(labels: dict[str, str], annotations: dict[str, str], patch: dict[str, Any] | None) -> tuple[dict, dict]:  # type: ignore[type-arg]
    labels, annotations = dict(labels), dict(annotations)
    meta = (patch or {}).get("metadata", {})
    for target, changes in ((labels, meta.get("labels", {})), (annotations, meta.get("annotations", {}))):
        for k, v in changes.items():
            if v is None:
                target.pop(k, None)
            else:
                target[k] = v
    return labels, annotations


@given(gate_labels, gate_labels, states, st.sampled_from(["success", "failed"]), st.booleans())
def test_settling_restores_every_gate_and_removes_the_journal(
    labels: dict[str, str], before: dict[str, str], state: str | None, final: str, with_journal: bool
) -> None:
    saved = gates_of(before)
    paused = {**labels, **pause_labels(saved)}
    if state is not None:
        paused[STATE_LABEL] = state
    annotations = {JOURNAL_ANNOTATION: "{}"} if with_journal else {}
    settle = Settle(final, "why", saved)
    after, after_annotations = merged(paused, annotations, settle_patch(paused, annotations, settle))
    assert not any(after.get(k) == PAUSED for k in GATES)
    assert after[STATE_LABEL] == final
    assert JOURNAL_ANNOTATION not in after_annotations and after_annotations[REASON_ANNOTATION] == "why"
    for key, value in saved.items():
        assert after[key] == ("false" if value == "false" else "true")
    # Settling a settled node changes nothing.
    assert settle_patch(after, after_annotations, settle) is None


checks = st.sampled_from(list(Check))


@given(gate_labels, states, st.one_of(st.none(), st.sampled_from(["", "all-balanced", "x"])), st.booleans(), checks)
def test_decide_invariants(
    labels: dict[str, str], state: str | None, desired: str | None, with_journal: bool, check: Check
) -> None:
    labels = dict(labels)
    if state is not None:
        labels[STATE_LABEL] = state
    if desired is not None:
        labels[CONFIG_LABEL] = desired
    journal = Journal("all-balanced", Phase.APPLYING, {}) if with_journal else None
    annotations = {JOURNAL_ANNOTATION: "{}"} if with_journal else {}
    assessment = None if with_journal or not desired else Assessment(check, "r")
    action = decide(Observed(labels, annotations, journal, assessment=assessment), {})
    if with_journal:
        assert action.kind in (Kind.RESUME, Kind.ABANDON)
        assert (action.kind is Kind.ABANDON) == (not desired)
    elif not desired:
        assert action.kind is Kind.IDLE
    else:
        assert action.kind in (Kind.IDLE, Kind.SETTLE, Kind.RECONFIGURE)
        if action.kind is Kind.RECONFIGURE:
            assert check in (Check.MODE_CHANGE, Check.INSTANCES)
        if action.kind is Kind.SETTLE:
            after, _ = merged(labels, annotations, dict(action.patch or {}))
            assert not any(after.get(k) == PAUSED for k in GATES)
            assert after[STATE_LABEL] in ("success", "failed")
