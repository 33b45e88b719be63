"""The agent's decisions, table-tested over plain data."""

from __future__ import annotations

import pytest

from mig_manager.agent.decide import (
    EV_FAILED,
    EV_INVALID,
    EV_SUCCESS,
    Assessment,
    Attempts,
    Check,
    Kind,
    Observed,
    RetryPolicy,
    Settle,
    backoff_delay,
    current_attempts,
    decide,
    record_failure,
    settle_patch,
)
from mig_manager.agent.journal import Journal, Phase, encode
from mig_manager.agent.labels import (
    CONFIG_LABEL,
    INVENTORY_ANNOTATION,
    JOURNAL_ANNOTATION,
    PAUSED,
    REASON_ANNOTATION,
    STATE_LABEL,
)

DP = "nvidia.com/gpu.deploy.device-plugin"
GFD = "nvidia.com/gpu.deploy.gpu-feature-discovery"
JOURNAL = Journal("all-balanced", Phase.APPLYING, {DP: "true", GFD: "false"})


def obs(labels: dict[str, str], annotations: dict[str, str] | None = None, **kw: object) -> Observed:
    return Observed(labels, annotations or {}, **kw)  # type: ignore[arg-type]


def test_no_label_means_no_action() -> None:
    action = decide(obs({STATE_LABEL: "success"}), {})
    assert action.kind is Kind.IDLE
    assert decide(obs({CONFIG_LABEL: ""}), {}).kind is Kind.IDLE


def test_a_journal_is_resumed_towards_the_current_label() -> None:
    action = decide(obs({CONFIG_LABEL: "all-1g.10gb"}, {JOURNAL_ANNOTATION: encode(JOURNAL)}, journal=JOURNAL), {})
    assert action.kind is Kind.RESUME
    assert action.target == "all-1g.10gb"


def test_a_journal_without_label_is_abandoned() -> None:
    action = decide(obs({}, {JOURNAL_ANNOTATION: encode(JOURNAL)}, journal=JOURNAL), {})
    assert action.kind is Kind.ABANDON
    assert action.target == "all-balanced"
    assert "label was removed" in action.reason


def test_an_unreadable_journal_restores_paused_gates_and_fails() -> None:
    labels = {CONFIG_LABEL: "x", DP: PAUSED, GFD: "false", STATE_LABEL: "pending"}
    action = decide(obs(labels, {JOURNAL_ANNOTATION: "{"}, journal_error="journal annotation: not valid JSON"), {})
    assert action.kind is Kind.SETTLE and not action.permanent and not action.transient
    assert action.patch == {
        "metadata": {
            "labels": {DP: "true", STATE_LABEL: "failed"},
            "annotations": {REASON_ANNOTATION: action.reason, JOURNAL_ANNOTATION: None},
        }
    }


def test_config_file_error_fails_permanently_once() -> None:
    action = decide(obs({CONFIG_LABEL: "x"}, config_error="config.yaml: line 3: bad"), {})
    assert action.kind is Kind.SETTLE and action.permanent
    assert action.event is not None and action.event.reason == EV_INVALID
    assert "config.yaml: line 3: bad" in action.reason
    again = decide(
        obs(
            {CONFIG_LABEL: "x", STATE_LABEL: "failed"},
            {REASON_ANNOTATION: action.reason},
            config_error="config.yaml: line 3: bad",
        ),
        {},
    )
    assert again.kind is Kind.IDLE and again.permanent


def test_invalid_config_fails_with_the_assessment_reason() -> None:
    a = Assessment(Check.INVALID, "MIG config 'x': unknown profile 9g.99gb")
    action = decide(obs({CONFIG_LABEL: "x", STATE_LABEL: "success"}, assessment=a), {})
    assert action.kind is Kind.SETTLE and action.permanent
    assert action.patch is not None
    assert action.patch["metadata"]["labels"] == {STATE_LABEL: "failed"}
    assert action.event is not None and action.event.type == "Warning"


@pytest.mark.parametrize(
    ("labels", "annotations", "kind", "event"),
    [
        ({CONFIG_LABEL: "c"}, {}, Kind.SETTLE, True),
        ({CONFIG_LABEL: "c", STATE_LABEL: "failed"}, {}, Kind.SETTLE, True),
        ({CONFIG_LABEL: "c", STATE_LABEL: "success"}, {REASON_ANNOTATION: "MIG config 'c' applied"}, Kind.IDLE, False),
        (
            {CONFIG_LABEL: "c", STATE_LABEL: "success", DP: PAUSED},
            {REASON_ANNOTATION: "MIG config 'c' applied"},
            Kind.SETTLE,
            False,
        ),
    ],
)
def test_applied_config_settles_success(
    labels: dict[str, str], annotations: dict[str, str], kind: Kind, event: bool
) -> None:
    action = decide(obs(labels, annotations, assessment=Assessment(Check.APPLIED)), {})
    assert action.kind is kind
    assert (action.event is not None) is event
    if event:
        assert action.event is not None and action.event.reason == EV_SUCCESS
    if kind is Kind.SETTLE:
        assert action.patch is not None
        assert action.patch["metadata"]["labels"].get(STATE_LABEL, "success") == "success"
        if labels.get(DP) == PAUSED:
            assert action.patch["metadata"]["labels"][DP] == "true"


@pytest.mark.parametrize(("check", "mode_change"), [(Check.MODE_CHANGE, True), (Check.INSTANCES, False)])
def test_a_difference_reconfigures(check: Check, mode_change: bool) -> None:
    action = decide(
        obs({CONFIG_LABEL: "c", STATE_LABEL: "success"}, assessment=Assessment(check, "GPU 0: differs")), {}
    )
    assert action.kind is Kind.RECONFIGURE
    assert action.target == "c"
    assert action.mode_change is mode_change
    assert "GPU 0: differs" in action.reason


def test_rebooting_state_with_the_mode_still_wrong_fails_without_a_second_reboot() -> None:
    action = decide(obs({CONFIG_LABEL: "c", STATE_LABEL: "rebooting"}, assessment=Assessment(Check.MODE_CHANGE)), {})
    assert action.kind is Kind.SETTLE and action.permanent
    assert "did not take effect after rebooting" in action.reason


def test_previous_failures_wait_or_stay_failed() -> None:
    a = Assessment(Check.INSTANCES, "differs")
    labels = {CONFIG_LABEL: "c", STATE_LABEL: "failed"}
    waiting = decide(
        obs(labels, now=10.0, config_digest="d", assessment=a), {("c", "d"): Attempts(1, 12.0, False, "x")}
    )
    assert waiting.kind is Kind.WAIT and waiting.wake_at == 12.0
    due = decide(obs(labels, now=13.0, config_digest="d", assessment=a), {("c", "d"): Attempts(1, 12.0, False, "x")})
    assert due.kind is Kind.RECONFIGURE
    other_digest = decide(
        obs(labels, now=10.0, config_digest="e", assessment=a), {("c", "d"): Attempts(1, 12.0, True, "x")}
    )
    assert other_digest.kind is Kind.RECONFIGURE
    stays = decide(
        obs(labels, {REASON_ANNOTATION: "reboot required"}, now=10.0, config_digest="d", assessment=a),
        {("c", "d"): Attempts(1, 0.0, True, "reboot required")},
    )
    assert stays.kind is Kind.IDLE


def test_unreadable_gpus_fail_transiently_then_wait() -> None:
    a = Assessment(Check.ERROR, "cannot read the GPUs: GPU 0: reading MIG mode failed (UNKNOWN)")
    first = decide(obs({CONFIG_LABEL: "c", STATE_LABEL: "success"}, now=1.0, assessment=a), {})
    assert first.kind is Kind.SETTLE and first.transient
    assert first.event is not None and first.event.reason == EV_FAILED
    waiting = decide(obs({CONFIG_LABEL: "c"}, now=1.0, assessment=a), {("c", ""): Attempts(1, 5.0, False, "x")})
    assert waiting.kind is Kind.WAIT


def test_settle_patch() -> None:
    labels = {DP: PAUSED, GFD: "false", STATE_LABEL: "pending"}
    annotations = {JOURNAL_ANNOTATION: "{}", REASON_ANNOTATION: "applying"}
    patch = settle_patch(labels, annotations, Settle("success", "done", {DP: None, GFD: "false"}, inventory="inv"))
    assert patch == {
        "metadata": {
            "labels": {DP: "true", STATE_LABEL: "success"},
            "annotations": {REASON_ANNOTATION: "done", JOURNAL_ANNOTATION: None, INVENTORY_ANNOTATION: "inv"},
        }
    }
    settled = {DP: "true", GFD: "false", STATE_LABEL: "success"}
    assert (
        settle_patch(
            settled,
            {REASON_ANNOTATION: "done", INVENTORY_ANNOTATION: "inv"},
            Settle("success", "done", inventory="inv"),
        )
        is None
    )


def test_backoff_and_failure_bookkeeping() -> None:
    policy = RetryPolicy(initial=0.5, maximum=3.0, max_retries=3)
    assert [backoff_delay(n, policy) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    a = record_failure(None, now=10.0, permanent=False, reason="x", policy=policy)
    assert (a.failures, a.next_at, a.permanent) == (1, 10.5, False)
    for _ in range(2):
        a = record_failure(a, now=10.0, permanent=False, reason="x", policy=policy)
    assert not a.permanent and a.failures == 3
    a = record_failure(a, now=10.0, permanent=False, reason="x", policy=policy)
    assert a.permanent and "gave up after 4 attempts" in a.reason
    p = record_failure(None, now=0.0, permanent=True, reason="reboot required", policy=policy)
    assert p.permanent and p.reason == "reboot required"


def test_applied_with_host_services_that_would_not_start() -> None:
    from mig_manager.agent.decide import services_key

    a = Assessment(Check.APPLIED)
    labels = {CONFIG_LABEL: "c", STATE_LABEL: "failed"}
    plain = decide(obs(labels, config_digest="d", assessment=a), {})
    assert plain.kind is Kind.SETTLE and plain.start_services
    key = services_key("c", "d")
    waiting = decide(obs(labels, now=1.0, config_digest="d", assessment=a), {key: Attempts(1, 5.0, False, "x")})
    assert waiting.kind is Kind.WAIT
    gave_up = decide(
        obs(labels, {REASON_ANNOTATION: "gave up"}, config_digest="d", assessment=a),
        {key: Attempts(6, 0, True, "gave up")},
    )
    assert gave_up.kind is Kind.IDLE
    # Other failures do not hold back success when the GPUs hold the config (level-triggered).
    other = decide(obs(labels, config_digest="d", assessment=a), {("c", "d"): Attempts(6, 0, True, "gave up")})
    assert other.kind is Kind.SETTLE and other.patch is not None
    assert other.patch["metadata"]["labels"][STATE_LABEL] == "success"


def test_warnings_are_kept_in_the_reason_and_posted_as_a_warning_event() -> None:
    a = Assessment(Check.APPLIED, warnings=("entry 0 selects GPU index 9",))
    action = decide(obs({CONFIG_LABEL: "c"}, assessment=a), {})
    assert action.kind is Kind.SETTLE
    assert action.reason == "MIG config 'c' is applied (warning: entry 0 selects GPU index 9)"
    assert action.event is not None and (action.event.type, action.event.reason) == ("Warning", "MigConfigWarning")
    change = decide(obs({CONFIG_LABEL: "c"}, assessment=Assessment(Check.INSTANCES, "x", ("w",))), {})
    assert change.kind is Kind.RECONFIGURE and change.warnings == ("w",)


GAVE_UP = Attempts(6, 0.0, True, "MIG config 'a': ... (gave up after 6 attempts)")
BACKING_OFF = Attempts(1, 50.0, False, "MIG config 'a': GPU in use")


@pytest.mark.parametrize(
    ("desired", "digest", "kept"),
    [
        ("a", "d1", {("a", "d1"), ("a", "services:d1")}),  # the label and the file as they were: the records count
        ("b", "d1", {("b", "d1")}),  # another config is labelled: a's records are forgotten
        (None, "d1", set()),  # the label is removed
        ("a", "d2", set()),  # the file changed: a's records under the old file are forgotten
    ],
)
def test_failure_records_last_while_the_label_and_the_file_stay(
    desired: str | None, digest: str, kept: set[tuple[str, str]]
) -> None:
    from mig_manager.agent.decide import services_key

    attempts = {("a", "d1"): GAVE_UP, services_key("a", "d1"): BACKING_OFF, ("b", "d1"): BACKING_OFF}
    assert set(current_attempts(attempts, desired, digest)) == kept


def test_a_config_that_failed_permanently_is_tried_again_when_the_label_comes_back() -> None:
    """A gives up; the label goes to B (which fails too, or is removed); back on A the agent reconfigures again."""
    differs = Assessment(Check.MODE_CHANGE, "GPU 0: MIG mode is disabled, the config wants it enabled")
    on_a = obs(
        {CONFIG_LABEL: "a", STATE_LABEL: "failed"},
        {REASON_ANNOTATION: GAVE_UP.reason},
        config_digest="d",
        assessment=differs,
    )
    attempts = current_attempts({("a", "d"): GAVE_UP}, "a", "d")
    assert decide(on_a, attempts).kind is Kind.IDLE  # stays failed while the label stays
    for between in ("b", None):
        attempts = current_attempts({("a", "d"): GAVE_UP, ("b", "d"): GAVE_UP}, between, "d")
        attempts = current_attempts(attempts, "a", "d")
        action = decide(on_a, attempts)
        assert action.kind is Kind.RECONFIGURE and action.target == "a"


NONE_SELECTED = "MIG config 'b' selects none of this node's GPUs: entry 0 (device-filter 0x20B010DE); ..."


@pytest.mark.parametrize(
    ("state", "reason", "warnings", "kind", "new_reason", "event"),
    [
        # The label moved from a to b, which already holds: the reason names b now (it named a).
        ("success", "MIG config 'a' applied", (), Kind.SETTLE, "MIG config 'b' is applied", None),
        ("failed", "MIG config 'a': x", (), Kind.SETTLE, "MIG config 'b' is applied", EV_SUCCESS),
        # b selects none of the node's GPUs: success, and the warning in the reason and a Warning event, whatever the
        # state was before.
        (
            "success",
            "MIG config 'a' applied",
            (NONE_SELECTED,),
            Kind.SETTLE,
            f"MIG config 'b' is applied (warning: {NONE_SELECTED})",
            "MigConfigWarning",
        ),
        (
            "failed",
            "MIG config 'a': x",
            (NONE_SELECTED,),
            Kind.SETTLE,
            f"MIG config 'b' is applied (warning: {NONE_SELECTED})",
            "MigConfigWarning",
        ),
        # Already said: nothing to write, no second event.
        ("success", f"MIG config 'b' is applied (warning: {NONE_SELECTED})", (NONE_SELECTED,), Kind.IDLE, None, None),
        ("success", f"MIG config 'b' applied (warning: {NONE_SELECTED})", (NONE_SELECTED,), Kind.IDLE, None, None),
        ("success", "MIG config 'b' applied", (), Kind.IDLE, None, None),
        # The warning went away (or appeared) under the same label: the reason follows.
        (
            "success",
            f"MIG config 'b' is applied (warning: {NONE_SELECTED})",
            (),
            Kind.SETTLE,
            "MIG config 'b' is applied",
            None,
        ),
    ],
    ids=[
        "moved",
        "moved-from-failed",
        "none-selected",
        "none-selected-from-failed",
        "said",
        "said-after-run",
        "run",
        "warning-gone",
    ],
)
def test_an_applied_config_reason_names_the_labelled_config_and_its_warnings(
    state: str, reason: str, warnings: tuple[str, ...], kind: Kind, new_reason: str | None, event: str | None
) -> None:
    action = decide(
        obs(
            {CONFIG_LABEL: "b", STATE_LABEL: state},
            {REASON_ANNOTATION: reason},
            assessment=Assessment(Check.APPLIED, warnings=warnings),
        ),
        {},
    )
    assert action.kind is kind
    if new_reason is not None:
        assert action.patch is not None
        assert action.patch["metadata"]["annotations"][REASON_ANNOTATION] == new_reason
        assert action.patch["metadata"].get("labels", {}).get(STATE_LABEL, state) == "success"
    assert (action.event.reason if action.event else None) == event


def test_settle_patch_records_and_drops_the_restore_point() -> None:
    restore = "nvidia.com/mig.config.restore"
    labels = {"nvidia.com/mig.config.state": "pending"}
    recorded = settle_patch(labels, {}, Settle("failed", "boom", restore_point='{"Version":"v1"}'))
    assert recorded is not None and recorded["metadata"]["annotations"][restore] == '{"Version":"v1"}'
    kept = {restore: '{"Version":"v1"}'}
    # a failure that did not touch the GPUs (or could not put them back) keeps the record
    assert restore not in (settle_patch(labels, kept, Settle("failed", "boom")) or {})["metadata"]["annotations"]
    # success (the GPUs hold the config) or a failure that put the recorded geometry back drops it
    for settle in (Settle("success", "done"), Settle("failed", "boom", restored=True)):
        patch = settle_patch(labels, kept, settle)
        assert patch is not None and patch["metadata"]["annotations"][restore] is None


def test_record_failure_keeps_trying_while_the_gpus_are_not_back() -> None:
    policy = RetryPolicy(initial=1.0, maximum=4.0, max_retries=1)
    a = record_failure(None, now=0.0, permanent=False, reason="x", policy=policy, keep_trying=True)
    for _ in range(5):
        a = record_failure(a, now=0.0, permanent=False, reason="x", policy=policy, keep_trying=True)
    assert not a.permanent and a.next_at == 4.0 and a.failures == 6  # backing off at the maximum, not giving up
    assert record_failure(a, now=0.0, permanent=False, reason="x", policy=policy).permanent
