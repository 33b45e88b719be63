"""The agent's decisions as pure functions over plain data: what to do next for this node, the label and annotation
patches that settle it, failure bookkeeping with back-off, and the texts users read.

`decide` is level-triggered: it looks at the node's labels and annotations, the journal, the config file and an
assessment of the GPUs against the desired config, never at what changed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .journal import Journal
from .labels import (
    CONFIG_LABEL,
    INVENTORY_ANNOTATION,
    JOURNAL_ANNOTATION,
    REASON_ANNOTATION,
    RESTORE_ANNOTATION,
    STATE_FAILED,
    STATE_LABEL,
    STATE_REBOOTING,
    STATE_SUCCESS,
    paused_gates,
    restore_labels,
)

# ---------------------------------------------------------------------------------------------------------------------
# Inputs


class Check(enum.Enum):
    """The GPUs against the desired config."""

    APPLIED = "applied"  # the config holds (assert passes)
    MODE_CHANGE = "mode-change"  # a MIG mode must change (and instances too, maybe)
    INSTANCES = "instances"  # modes hold, instances differ
    INVALID = "invalid"  # permanent: unknown config, unknown profile, infeasible geometry, GPU index beyond the node
    ERROR = "error"  # transient: the GPUs could not be read


@dataclass(frozen=True)
class Assessment:
    check: Check
    reason: str = ""
    warnings: tuple[str, ...] = ()  # e.g. a `devices` index beyond the node's GPUs (NVIDIA ignores those silently)


@dataclass(frozen=True)
class Observed:
    """Everything `decide` looks at."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    journal: Journal | None = None
    journal_error: str | None = None
    config_error: str | None = None
    config_digest: str = ""
    assessment: Assessment | None = None
    now: float = 0.0

    @property
    def desired(self) -> str | None:
        return self.labels.get(CONFIG_LABEL) or None

    @property
    def state(self) -> str | None:
        return self.labels.get(STATE_LABEL)


@dataclass(frozen=True)
class Attempts:
    """Failures of one (config name, config digest): how many, when to try again, and whether to stop trying."""

    failures: int = 0
    next_at: float = 0.0
    permanent: bool = False
    reason: str = ""


Key = tuple[str, str]  # (config name, config file digest)


def services_key(config: str, digest: str) -> Key:
    """Where failures to start host services on the way to `success` are recorded."""
    return (config, f"services:{digest}")


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 5.0
    maximum: float = 300.0
    max_retries: int = 5  # transient failures of one config before giving up (until the label or config changes)


def current_attempts(attempts: Mapping[Key, Attempts], desired: str | None, digest: str) -> dict[Key, Attempts]:
    """The failure records that still count: those of the desired config under the current config file.

    A record lasts only while the label and the file stay as they were: once the agent has seen the label name another
    config (or none) or the file change, a return to the old label and file is a new request (A fails permanently,
    the label goes to B, whatever B's outcome, then back to A: A is tried again, with a fresh count of retries)."""
    if desired is None:
        return {}
    keep = {(desired, digest), services_key(desired, digest)}
    return {key: attempt for key, attempt in attempts.items() if key in keep}


def backoff_delay(failures: int, policy: RetryPolicy) -> float:
    """Exponential back-off: initial, 2x, 4x, ... capped at maximum (failures counts from 1)."""
    if failures <= 0:
        return 0.0
    return float(min(policy.maximum, policy.initial * (2 ** min(failures - 1, 30))))


def record_failure(
    previous: Attempts | None,
    *,
    now: float,
    permanent: bool,
    reason: str,
    policy: RetryPolicy,
    keep_trying: bool = False,
) -> Attempts:
    """The bookkeeping after a failed run: a permanent failure stops retries; a transient one backs off, and after
    `max_retries` of them the agent stops retrying too, unless it must `keep_trying` (the GPUs are not back to their
    geometry from before the change: giving up would leave them half-changed)."""
    failures = (previous.failures if previous else 0) + 1
    if permanent:
        return Attempts(failures, 0.0, True, reason)
    if failures > policy.max_retries and not keep_trying:
        return Attempts(failures, 0.0, True, f"{reason} (gave up after {failures} attempts)")
    return Attempts(failures, now + backoff_delay(failures, policy), False, reason)


# ---------------------------------------------------------------------------------------------------------------------
# Outputs


class Kind(enum.Enum):
    IDLE = "idle"  # nothing to do
    SETTLE = "settle"  # write `patch` (final state, gates restored), no GPU work
    RECONFIGURE = "reconfigure"  # start a new run towards `target`
    RESUME = "resume"  # continue the journal's run (towards `target`, the label now)
    ABANDON = "abandon"  # the label went away during a run: undo it, restore, fail
    WAIT = "wait"  # back-off: try again at `wake_at`


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Action:
    kind: Kind
    target: str | None = None
    reason: str = ""
    patch: Mapping[str, Any] | None = None
    event: Event | None = None
    wake_at: float | None = None
    mode_change: bool = False
    permanent: bool = False  # SETTLE to failed: record as a permanent failure
    transient: bool = False  # SETTLE to failed: record as a transient failure (retry with back-off)
    start_services: bool = False  # SETTLE to success: first start the host GPU clients that are failed or inactive
    warnings: tuple[str, ...] = ()  # RECONFIGURE: kept in the final reason and posted as a Warning event


# Event reasons (documented in docs/agent.md).
EV_STARTED = "MigConfigChangeStarted"
EV_RESUMED = "MigConfigChangeResumed"
EV_REBOOTING = "MigConfigRebooting"
EV_SUCCESS = "MigConfigApplied"
EV_FAILED = "MigConfigFailed"
EV_INVALID = "MigConfigInvalid"
EV_WARNING = "MigConfigWarning"
EVENT_REASONS = (EV_STARTED, EV_RESUMED, EV_REBOOTING, EV_SUCCESS, EV_FAILED, EV_INVALID, EV_WARNING)


# ---------------------------------------------------------------------------------------------------------------------
# Texts


def text_applied(config: str, changed: bool) -> str:
    if changed:
        return f"MIG config {config!r} applied"
    return f"MIG config {config!r} is applied"


def with_warnings(reason: str, warnings: tuple[str, ...]) -> str:
    return f"{reason} (warning: {'; '.join(warnings)})" if warnings else reason


def text_config_unreadable(error: str) -> str:
    return f"cannot use the MIG config file: {error}"


def text_not_rebooted(config: str) -> str:
    return f"MIG config {config!r}: MIG mode change did not take effect after rebooting"


def text_retry(reason: str, delay: float) -> str:
    return f"{reason}; retrying in {max(delay, 0.0):.1f}s"


def text_label_removed(target: str) -> str:
    return f"the {CONFIG_LABEL} label was removed while applying {target!r}; the previous MIG geometry was restored"


# ---------------------------------------------------------------------------------------------------------------------
# Patches


@dataclass(frozen=True)
class Settle:
    """The end state of a node: its state label, reason annotation, gates restored, journal gone."""

    state: str
    reason: str
    saved_gates: Mapping[str, str | None] | None = None  # from the journal; None: restore any paused gate
    inventory: str | None = None
    extra_annotations: Mapping[str, str] = field(default_factory=dict)
    # The geometry a failed run could not put back (recorded); None: nothing to record, and on `success` or when
    # `restored` any recorded one is dropped (the GPUs hold the config, or what they held before).
    restore_point: str | None = None
    restored: bool = False


def settle_patch(labels: Mapping[str, str], annotations: Mapping[str, str], settle: Settle) -> dict[str, Any] | None:
    """The JSON merge patch that brings the node to `settle`, or None when it is already there."""
    want_labels: dict[str, str] = paused_gates(labels)
    if settle.saved_gates is not None:
        want_labels.update(restore_labels(settle.saved_gates))
    want_labels[STATE_LABEL] = settle.state
    label_patch = {k: v for k, v in want_labels.items() if labels.get(k) != v}
    ann_patch: dict[str, str | None] = {}
    if annotations.get(REASON_ANNOTATION) != settle.reason:
        ann_patch[REASON_ANNOTATION] = settle.reason
    if JOURNAL_ANNOTATION in annotations:
        ann_patch[JOURNAL_ANNOTATION] = None
    extra = dict(settle.extra_annotations)
    if settle.inventory is not None:
        extra[INVENTORY_ANNOTATION] = settle.inventory
    ann_patch.update({k: v for k, v in extra.items() if annotations.get(k) != v})
    if settle.restore_point is not None:
        if annotations.get(RESTORE_ANNOTATION) != settle.restore_point:
            ann_patch[RESTORE_ANNOTATION] = settle.restore_point
    elif RESTORE_ANNOTATION in annotations and (settle.state == STATE_SUCCESS or settle.restored):
        ann_patch[RESTORE_ANNOTATION] = None
    if not label_patch and not ann_patch:
        return None
    meta: dict[str, Any] = {}
    if label_patch:
        meta["labels"] = label_patch
    if ann_patch:
        meta["annotations"] = ann_patch
    return {"metadata": meta}


# ---------------------------------------------------------------------------------------------------------------------
# The decision


def _settle(
    obs: Observed, state: str, reason: str, event: Event | None, *, permanent: bool = False, transient: bool = False
) -> Action:
    """Settle the node in `state`; IDLE when it is there already (a permanent failure is still recorded)."""
    patch = settle_patch(obs.labels, obs.annotations, Settle(state, reason))
    if patch is None:
        return Action(Kind.IDLE, obs.desired, reason, permanent=permanent, transient=transient)
    return Action(Kind.SETTLE, obs.desired, reason, patch=patch, event=event, permanent=permanent, transient=transient)


def decide(obs: Observed, attempts: Mapping[Key, Attempts]) -> Action:
    """The next action for this node."""
    desired = obs.desired
    if obs.journal_error is not None:
        # Restore what can be restored; the next pass (no journal any more) decides afresh.
        reason = f"{obs.journal_error}; the reconfiguration it describes cannot be finished, gates restored"
        return _settle(obs, STATE_FAILED, reason, Event("Warning", EV_FAILED, reason))
    if obs.journal is not None:
        if desired is None:
            return Action(Kind.ABANDON, obs.journal.target, text_label_removed(obs.journal.target))
        return Action(Kind.RESUME, desired, f"resuming the reconfiguration to {desired!r}")
    if desired is None:
        return Action(Kind.IDLE, None, f"no {CONFIG_LABEL} label: nothing to do")
    if obs.config_error is not None:
        reason = text_config_unreadable(obs.config_error)
        return _settle(obs, STATE_FAILED, reason, Event("Warning", EV_INVALID, reason), permanent=True)
    assessment = obs.assessment
    assert assessment is not None, "decide needs an assessment when a config is desired"
    key = (desired, obs.config_digest)
    if assessment.check is Check.INVALID:
        return _settle(
            obs, STATE_FAILED, assessment.reason, Event("Warning", EV_INVALID, assessment.reason), permanent=True
        )
    if assessment.check is Check.APPLIED:
        # Level-triggered: GPUs that hold the config mean success, whatever failed before; only host services that
        # could not be started on the way to success (recorded under `services_key`) keep the node failed.
        services = attempts.get(services_key(desired, obs.config_digest))
        if services is not None and services.permanent:
            return _settle(obs, STATE_FAILED, services.reason, None)
        if services is not None and services.next_at > obs.now:
            return Action(Kind.WAIT, desired, services.reason, wake_at=services.next_at)
        # The reason a run to this config left (`applied`) or an earlier pass wrote (`is applied`) stays; one about
        # another config (the label changed to a config that already holds) or older warnings is rewritten.
        reason = obs.annotations.get(REASON_ANNOTATION, "")
        known = obs.state == STATE_SUCCESS and reason in (
            with_warnings(text_applied(desired, changed=True), assessment.warnings),
            with_warnings(text_applied(desired, changed=False), assessment.warnings),
        )
        event = None
        if not known:
            reason = with_warnings(text_applied(desired, changed=False), assessment.warnings)
            if assessment.warnings:
                event = Event("Warning", EV_WARNING, reason)
            elif obs.state != STATE_SUCCESS:
                event = Event("Normal", EV_SUCCESS, reason)
        action = _settle(obs, STATE_SUCCESS, reason, event)
        return replace(action, start_services=action.kind is Kind.SETTLE)
    previous = attempts.get(key)
    if assessment.check is Check.ERROR:
        reason = assessment.reason
        if previous is not None and not previous.permanent and previous.next_at > obs.now:
            return Action(Kind.WAIT, desired, previous.reason, wake_at=previous.next_at)
        return _settle(obs, STATE_FAILED, reason, Event("Warning", EV_FAILED, reason), transient=True)
    if obs.state == STATE_REBOOTING and assessment.check is Check.MODE_CHANGE:
        reason = text_not_rebooted(desired)
        return _settle(obs, STATE_FAILED, reason, Event("Warning", EV_FAILED, reason), permanent=True)
    if previous is not None and previous.permanent:
        return _settle(obs, STATE_FAILED, previous.reason, None)
    if previous is not None and previous.next_at > obs.now:
        return Action(Kind.WAIT, desired, previous.reason, wake_at=previous.next_at)
    return Action(
        Kind.RECONFIGURE,
        desired,
        f"reconfiguring to {desired!r}: {assessment.reason}",
        mode_change=assessment.check is Check.MODE_CHANGE,
        warnings=assessment.warnings,
    )
