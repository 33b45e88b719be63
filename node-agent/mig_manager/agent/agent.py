"""The reconciler: the imperative shell around `decide`.

One worker thread reconciles; it wakes on Node events (the watcher), config file changes (a cheap stat every few
seconds), a periodic resync and back-off timers. A reconfiguration runs through the phases of mig-facts 3.3, writing
the journal at each boundary; every exit path (success, failure, a stop request) starts the host services again,
restores the gates and sets `success` or `failed` with a reason, in one patch that also removes the journal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..devices.base import GpuBackend
from ..errors import ConfigSelectionError, MigManagerError
from ..parted import Outcome, apply_config, assert_config, restore_state
from ..parted.apply import plan_errors
from ..parted.node import StepError, discover
from ..parted.state import NodeState, fetch_state, state_from_json, state_to_json
from ..planner import plan_node
from ..spec import MigPartedSpec, select_config
from . import inventory as inv
from .decide import (
    EV_FAILED,
    EV_REBOOTING,
    EV_RESUMED,
    EV_STARTED,
    EV_SUCCESS,
    EV_WARNING,
    Action,
    Assessment,
    Attempts,
    Check,
    Event,
    Key,
    Kind,
    Observed,
    RetryPolicy,
    Settle,
    backoff_delay,
    current_attempts,
    decide,
    record_failure,
    services_key,
    settle_patch,
    text_applied,
    text_label_removed,
    text_not_rebooted,
    text_retry,
    with_warnings,
)
from .errors import HostError, JournalError, PermanentError, TransientError
from .host import Host, StopAction, restart_order, services_to_stop, stop_decision
from .journal import Journal, Phase, RebootMark, decode, encode
from .kube import Conflict, Kube, now_rfc3339
from .labels import (
    CLIENT_GATE,
    COMPONENT_APPS,
    CONFIG_LABEL,
    INVENTORY_ANNOTATION,
    JOURNAL_ANNOTATION,
    OPERATOR_VALIDATOR_APP,
    REASON_ANNOTATION,
    RESTORE_ANNOTATION,
    STATE_FAILED,
    STATE_LABEL,
    STATE_PENDING,
    STATE_REBOOTING,
    STATE_SUCCESS,
    VALIDATOR_APPS,
    gates_of,
    pause_labels,
)
from .metrics import Metrics
from .selection import selection_warnings
from .settings import Settings
from .source import ConfigSource
from .watcher import NodeWatcher

log = logging.getLogger("mig_manager.agent")

CRASH_EXIT_CODE = 137
CRASH_POINTS = (
    "paused",  # state pending, gates paused, journal written
    "pods-gone",  # the components' pods are gone
    "services-stopped",  # host GPU clients stopped
    "applying",  # journal phase applying written, GPUs not touched yet
    "applied",  # the GPUs changed, services and gates not restored yet
    "services-started",  # host GPU clients started again, gates not restored yet
    "rebooting",  # state rebooting and journal written, host not rebooted yet
    "finished",  # final state written
)
ACTIVE = ("active", "activating", "reloading")


class Rebooted(Exception):
    """The host was rebooted: the agent stops, as it would on a real node."""


@dataclass
class _Outcome:
    state: str
    reason: str
    permanent: bool = False
    transient: bool = False


def _meta(node: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (node or {}).get("metadata") or {}


def _labels(node: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(_meta(node).get("labels") or {})


def _annotations(node: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(_meta(node).get("annotations") or {})


def _owes_restore(node: Mapping[str, Any] | None) -> bool:
    """A failed run left a geometry to put back (the restore annotation): retries never give up while it is there."""
    return RESTORE_ANNOTATION in _annotations(node)


class Agent:
    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        backend: GpuBackend,
        host: Host,
        source: ConfigSource,
        *,
        clients: Sequence[str] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.backend = backend
        self.host = host
        self.source = source
        self.clients = tuple(clients)
        self.metrics = metrics or Metrics(settings.node_name)
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self.watcher = NodeWatcher(kube, self._wake.set, self.stop_event, watch_timeout=settings.watch_timeout)
        self.policy = RetryPolicy(settings.backoff_initial, settings.backoff_max, settings.max_retries)
        self.attempts: dict[Key, Attempts] = {}
        self.alive_at = time.monotonic()
        self.ready = threading.Event()
        self.runs = 0
        self._fingerprint = ""
        self._wake_at: float | None = None  # when the last decision wants another pass (a back-off), if it does
        self._inventory: str | None = None
        self._pods_seen: list[dict[str, Any]] = []
        self._evaluated: dict[str, Any] | None = None
        self.decided: Mapping[str, Any] | None = None  # the Node version the last finished pass decided on
        self.http_port: int | None = None  # set by main.run_agent once /metrics is served
        self._warnings: tuple[str, ...] = ()  # of the config being applied (`_warnings_target`)
        self._warnings_target = ""

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def healthy(self) -> bool:
        return not self.stop_event.is_set()

    def _poll_config(self) -> None:
        while not self.stop_event.wait(self.settings.config_poll_interval):
            if self.source.changed():
                log.info("config file changed path=%s", self.source.path)
                self._wake.set()

    def run(self) -> str:
        """Reconcile until stopped ("stopped") or the host reboots ("rebooted")."""
        log.info("starting node=%s config=%s", self.settings.node_name, self.source.path)
        self.watcher.start()
        threading.Thread(target=self._poll_config, name="mig-manager-config-poll", daemon=True).start()
        s = self.settings
        next_resync = time.monotonic() + s.resync_period
        wake_at: float | None = None
        force = True
        errors = 0  # consecutive failed passes: back off exponentially
        while not self.stop_event.is_set():
            if self.watcher.synced.is_set():
                self._wake.clear()
                try:
                    wake_at = self.reconcile(force=force)
                    force = False
                    errors = 0
                except Rebooted:
                    log.warning("the host is rebooting; the agent stops")
                    return "rebooted"
                except Exception as exc:  # API errors after retries; a bug must not kill the agent either
                    errors += 1
                    delay = backoff_delay(errors, self.policy)
                    if isinstance(exc, (TransientError, HostError, StepError)):
                        log.warning("reconcile failed: %s; retrying in %.1fs", exc, delay)
                    else:
                        log.exception("reconcile failed unexpectedly; retrying in %.1fs", delay)
                    wake_at = time.monotonic() + delay
                    force = True
                self.alive_at = time.monotonic()
                self.ready.set()
            now = time.monotonic()
            deadline = min(next_resync, wake_at if wake_at is not None else next_resync)
            self._wake.wait(max(0.0, deadline - now))
            now = time.monotonic()
            if now >= next_resync:
                force = True
                next_resync = now + s.resync_period
            if wake_at is not None and now >= wake_at:
                force = True
                wake_at = None
        log.info("stopped")
        return "stopped"

    # -- helpers ------------------------------------------------------------------------------------------------------

    def crash(self, point: str) -> None:
        """Test hook: exit abruptly at a phase boundary when MIG_MANAGER_CRASH_AT names it."""
        if self.settings.crash_at == point:
            log.warning("MIG_MANAGER_CRASH_AT=%s: exiting abruptly", point)
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)

    def _patch(self, patch: Mapping[str, Any], what: str) -> dict[str, Any]:
        node = self.kube.patch_node(patch, what)
        self.watcher.update(node)
        self._evaluated = None  # the response may hold others' changes too: evaluate the next version afresh
        return node

    def _event(self, type_: str, reason: str, message: str) -> None:
        log.info("event type=%s reason=%s message=%s", type_, reason, message)
        self.kube.post_event(self.watcher.latest, type_, reason, message)

    def _fingerprint_of(self, node: Mapping[str, Any] | None, digest: str) -> str:
        labels = _labels(node)
        annotations = _annotations(node)
        keys = sorted(k for k in labels if k.startswith(("nvidia.com/mig.config", "nvidia.com/gpu.deploy.")))
        return json.dumps(
            [
                [(k, labels[k]) for k in keys],
                annotations.get(JOURNAL_ANNOTATION),
                annotations.get(REASON_ANNOTATION),
                annotations.get(INVENTORY_ANNOTATION) == self._inventory,
                digest,
            ]
        )

    def _refresh_inventory(self) -> str | None:
        try:
            self._inventory = inv.encode(inv.read(self.backend))
        except MigManagerError as exc:
            log.warning("cannot read the GPU inventory: %s", exc)
        return self._inventory

    # -- assessment ---------------------------------------------------------------------------------------------------

    def assess(self, spec: MigPartedSpec, desired: str) -> Assessment:
        """The GPUs against the desired config (reads only)."""
        try:
            name, entries = select_config(spec, desired)
        except ConfigSelectionError as exc:
            return Assessment(Check.INVALID, f"MIG config {desired!r}: {exc} (file {self.source.path})")
        try:
            gpus = discover(self.backend)
        except StepError as exc:
            return Assessment(Check.ERROR, f"cannot read the GPUs: {exc}")
        warnings = selection_warnings(name, entries, [g.node for g in gpus])
        node_plan = plan_node(spec, name, [g.node for g in gpus])
        if not node_plan.ok:
            errors = "; ".join(plan_errors(gpus, node_plan))
            reason = f"MIG config {name!r} cannot be applied to this node's GPUs: {errors}"
            return Assessment(Check.INVALID, with_warnings(reason, warnings))
        try:
            result = assert_config(self.backend, spec, name)
        except StepError as exc:
            return Assessment(Check.ERROR, f"cannot read the GPUs: {exc}")
        if result.ok:
            return Assessment(Check.APPLIED, warnings=warnings)
        mode_change = any(
            c.selected and c.desired_mode is not None and c.current_mode != c.desired_mode for c in result.gpus
        )
        check = Check.MODE_CHANGE if mode_change else Check.INSTANCES
        return Assessment(check, "; ".join(result.mismatches()), warnings)

    # -- reconcile ----------------------------------------------------------------------------------------------------

    def reconcile(self, force: bool = False) -> float | None:
        """One level-triggered pass; returns when to wake up again (back-off), if before the next resync."""
        node = self.watcher.latest
        if node is None:
            log.warning("node %s not found; nothing to do", self.settings.node_name)
            return None
        self._evaluated = node
        config = self.source.current()
        fingerprint = self._fingerprint_of(node, config.digest)
        if not force and fingerprint == self._fingerprint:
            self.decided = node  # nothing the agent looks at changed since the last decision
            return self._wake_at  # ...so a back-off it waits for still stands
        if force or self._inventory is None:
            self._refresh_inventory()
        labels, annotations = _labels(node), _annotations(node)
        journal: Journal | None = None
        journal_error: str | None = None
        if JOURNAL_ANNOTATION in annotations:
            try:
                journal = decode(annotations[JOURNAL_ANNOTATION])
            except JournalError as exc:
                journal_error = str(exc)
        desired = labels.get(CONFIG_LABEL) or None
        assessment = None
        if journal is None and journal_error is None and desired and config.spec is not None:
            assessment = self.assess(config.spec, desired)
        obs = Observed(
            labels, annotations, journal, journal_error, config.error, config.digest, assessment, time.monotonic()
        )
        self.attempts = current_attempts(self.attempts, desired, config.digest)
        action = decide(obs, self.attempts)
        log.debug("decision kind=%s target=%s reason=%s", action.kind.value, action.target, action.reason)
        key: Key = (action.target or "", config.digest)
        wake_at = self._dispatch(action, node, key, config.spec)
        # What this pass saw; after a write, nothing: the next version (our own echo included) gets its own pass.
        self._fingerprint = "" if self._evaluated is None else self._fingerprint_of(self._evaluated, config.digest)
        self.decided = node
        self._wake_at = wake_at
        return wake_at

    def _dispatch(self, action: Action, node: dict[str, Any], key: Key, spec: MigPartedSpec | None) -> float | None:
        labels, annotations = _labels(node), _annotations(node)
        if action.permanent or action.transient:
            text = self._failed(key, action.reason, permanent=action.permanent, keep_trying=_owes_restore(node))
            if action.transient and action.kind is Kind.SETTLE and action.patch is not None:
                # say when the next try is (or that there is none), as a failed run does
                patched: dict[str, Any] = json.loads(json.dumps(action.patch))
                patched["metadata"].setdefault("annotations", {})[REASON_ANNOTATION] = text
                action = replace(action, patch=patched, reason=text)
        if action.kind is Kind.IDLE:
            if action.target is not None and labels.get(STATE_LABEL):
                self.metrics.set_state(labels[STATE_LABEL])
            if self._inventory is not None and annotations.get(INVENTORY_ANNOTATION) != self._inventory:
                self._patch({"metadata": {"annotations": {INVENTORY_ANNOTATION: self._inventory}}}, "inventory")
            return self._next_attempt(key)
        if action.kind is Kind.WAIT:
            log.info(
                "waiting to retry config=%s at +%.1fs: %s",
                action.target,
                (action.wake_at or 0) - time.monotonic(),
                action.reason,
            )
            return action.wake_at
        if action.kind is Kind.SETTLE:
            assert action.patch is not None
            patch: dict[str, Any] = json.loads(json.dumps(action.patch))
            if action.start_services and action.target is not None:
                failure = self._start_idle_services()
                if failure is not None:
                    patch, action = self._services_failed(action, action.target, failure, labels, annotations)
            if self._inventory is not None and annotations.get(INVENTORY_ANNOTATION) != self._inventory:
                patch["metadata"].setdefault("annotations", {})[INVENTORY_ANNOTATION] = self._inventory
            state = patch["metadata"].get("labels", {}).get(STATE_LABEL, labels.get(STATE_LABEL, ""))
            log.info("settling node state=%s reason=%s", state, action.reason)
            self._patch(patch, f"state {state}")
            self.metrics.set_state(state)
            if action.event is not None:
                self._event(action.event.type, action.event.reason, action.event.message)
            if state == STATE_SUCCESS:
                self.attempts.clear()
            if action.target is not None and state == STATE_FAILED:
                services = self._next_attempt(services_key(action.target, key[1]))
                if services is not None:
                    return services
            return self._next_attempt(key)
        assert action.target is not None
        if action.kind is Kind.RECONFIGURE:
            assert spec is not None
            self._start_run(action, node, spec)
        elif action.kind is Kind.RESUME:
            self._resume(action.target, node)
        elif action.kind is Kind.ABANDON:
            self._abandon(node)
        return self._next_attempt(key)

    def _start_idle_services(self) -> str | None:
        """NVIDIA's success path: host GPU clients that are failed, or inactive but enabled, are started."""
        if not self.settings.with_shutdown_host_gpu_clients:
            return None
        errors: list[str] = []
        for name in self.clients:
            try:
                action, why = stop_decision(self.host.unit(name))
                if action is StopAction.REMEMBER:
                    log.info("starting host service %s (%s)", name, why)
                    self.host.start(name, self.settings.service_start_timeout)
            except HostError as exc:
                errors.append(str(exc))
        return "; ".join(errors) or None

    def _services_failed(
        self, action: Action, target: str, failure: str, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> tuple[dict[str, Any], Action]:
        key = services_key(target, self.source.current().digest)
        reason = self._failed(key, f"{text_applied(target, changed=False)}; starting host services failed: {failure}")
        patch = settle_patch(labels, annotations, Settle(STATE_FAILED, reason)) or {"metadata": {}}
        return patch, replace(action, event=Event("Warning", EV_FAILED, reason), reason=reason)

    def _failed(self, key: Key, reason: str, *, permanent: bool = False, keep_trying: bool = False) -> str:
        """Record a failure of `key`; the reason to show: with when the next try is, or that there is none."""
        attempt = record_failure(
            self.attempts.get(key),
            now=time.monotonic(),
            permanent=permanent,
            reason=reason,
            policy=self.policy,
            keep_trying=keep_trying,
        )
        self.attempts[key] = attempt
        if attempt.permanent:
            return attempt.reason
        return text_retry(reason, attempt.next_at - time.monotonic())

    def _next_attempt(self, key: Key) -> float | None:
        attempt = self.attempts.get(key)
        if attempt is None or attempt.permanent:
            return None
        return attempt.next_at

    # -- a run --------------------------------------------------------------------------------------------------------

    def _checkpoint(self, node: Mapping[str, Any]) -> dict[str, Any]:
        """The geometry a failed run returns to: the one a previous failed run could not put back, if recorded (so
        that retries do not take a half-restored geometry as the one to return to), else the GPUs' now."""
        recorded = _annotations(node).get(RESTORE_ANNOTATION)
        if recorded:
            try:
                data = json.loads(recorded)
                state_from_json(data, RESTORE_ANNOTATION)
                return dict(data)
            except (ValueError, MigManagerError) as exc:
                log.warning("ignoring the unreadable %s annotation: %s", RESTORE_ANNOTATION, exc)
        return state_to_json(fetch_state(self.backend))

    def _start_run(self, action: Action, node: dict[str, Any], spec: MigPartedSpec) -> None:
        target = action.target
        assert target is not None
        started = time.monotonic()
        labels = _labels(node)
        saved = gates_of(labels)
        try:
            checkpoint = self._checkpoint(node)
        except MigManagerError as exc:  # nothing changed yet: fail (transient) before pausing anything
            self._unreadable(target, node, f"cannot read the GPUs: {exc}")
            return
        journal = Journal(
            target=target,
            phase=Phase.PAUSED,
            gates=saved,
            started=now_rfc3339(),
            mode_change=action.mode_change,
            checkpoint=checkpoint,
        )
        log.info(
            "Selected MIG config is not applied: config=%s mode_change=%s: %s",
            target,
            action.mode_change,
            action.reason,
        )
        patch = {
            "metadata": {
                "resourceVersion": _meta(node).get("resourceVersion"),
                "labels": {STATE_LABEL: STATE_PENDING, **pause_labels(saved)},
                "annotations": {
                    JOURNAL_ANNOTATION: encode(journal),
                    REASON_ANNOTATION: f"applying MIG config {target!r}",
                },
            }
        }
        try:
            self._patch(patch, "pending, gates paused, journal")
        except Conflict:
            log.info("the node changed while starting; deciding again")
            self.watcher.refresh()
            self._evaluated = None
            self._wake.set()
            return
        self.runs += 1
        self._warnings, self._warnings_target = action.warnings, target
        self.metrics.set_state(STATE_PENDING)
        log.info(
            "Changed the %s node label to pending and shut down the GPU clients in Kubernetes: %s",
            STATE_LABEL,
            ", ".join(f"{k}={v}" for k, v in pause_labels(saved).items()),
        )
        self._event("Normal", EV_STARTED, f"Applying MIG config {target!r}")
        for warning in action.warnings:
            log.warning("%s", warning)
            self._event("Warning", EV_WARNING, warning)
        self.crash("paused")
        self._execute(journal, started)

    def _unreadable(self, target: str, node: Mapping[str, Any], reason: str) -> None:
        """A run could not start because the GPUs could not be read: `failed`, retried with back-off."""
        text = self._failed((target, self.source.current().digest), reason, keep_trying=_owes_restore(node))
        patch = settle_patch(_labels(node), _annotations(node), Settle(STATE_FAILED, text))
        if patch is not None:
            self._patch(patch, "state failed: GPUs unreadable")
        self.metrics.set_state(STATE_FAILED)
        log.error("cannot start the run to %s: %s", target, text)
        self._event("Warning", EV_FAILED, f"MIG config {target!r} failed: {text}")

    def _resume(self, target: str, node: dict[str, Any]) -> None:
        started = time.monotonic()
        labels = _labels(node)
        journal = decode(_annotations(node)[JOURNAL_ANNOTATION])
        log.info("resuming config=%s from phase=%s (journal target %s)", target, journal.phase.value, journal.target)
        self._event(
            "Normal",
            EV_RESUMED,
            f"Resuming the MIG reconfiguration to {target!r} from phase {journal.phase.value}",
        )
        if journal.phase is Phase.REBOOTING:
            mark = journal.reboot
            if mark is not None and self.host.boot_id() == mark.boot_id:
                log.warning("the reboot requested for %s has not happened yet; rebooting", mark.config)
                self.host.reboot()
                raise Rebooted
            # Booted again: decide the host services afresh (the kubelet only if the mode still has to change).
            journal = journal.at(Phase.PAUSED, services=None, mode_change=False)
        config = self.source.current()
        if target != journal.target:
            problem = self._target_problem(config.spec, target)
            if problem is not None:
                restored = self._undo(journal)
                self._finish(journal, _Outcome(STATE_FAILED, problem, permanent=True), started, restored)
                return
            reboot = journal.reboot if journal.reboot is not None and journal.reboot.config == target else None
            journal = replace(journal, target=target, reboot=reboot)
        if journal.phase in (Phase.PAUSED, Phase.STOPPING_SERVICES):
            try:
                mode_only = assert_config(self.backend, config.spec, target, mode_only=True) if config.spec else None
                if mode_only is not None:
                    journal = replace(journal, mode_change=journal.mode_change or not mode_only.ok)
            except (MigManagerError, ConfigSelectionError) as exc:
                log.warning("cannot check the MIG mode: %s", exc)
        want = {STATE_LABEL: STATE_PENDING, **pause_labels(journal.gates)}
        if (
            any(labels.get(k) != v for k, v in want.items())
            or decode(_annotations(node)[JOURNAL_ANNOTATION]) != journal
        ):
            self._patch(
                {"metadata": {"labels": want, "annotations": {JOURNAL_ANNOTATION: encode(journal)}}},
                "resume: pending, gates paused",
            )
        self.runs += 1
        self.metrics.set_state(STATE_PENDING)
        self._execute(journal, started)

    def _abandon(self, node: dict[str, Any]) -> None:
        started = time.monotonic()
        journal = decode(_annotations(node)[JOURNAL_ANNOTATION])
        log.warning("the %s label was removed during the run to %s; undoing it", CONFIG_LABEL, journal.target)
        restored = self._undo(journal)
        outcome = _Outcome(STATE_FAILED, text_label_removed(journal.target), permanent=True)
        self._finish(journal, outcome, started, restored)

    def _target_problem(self, spec: MigPartedSpec | None, target: str) -> str | None:
        if spec is None:
            return f"cannot use the MIG config file {self.source.path}: {self.source.current().error}"
        assessment = self.assess(spec, target)
        if assessment.check in (Check.INVALID, Check.ERROR):
            return assessment.reason
        return None

    def _execute(self, journal: Journal, started: float) -> None:
        outcome: _Outcome
        touched = journal.phase is Phase.APPLYING
        try:
            if journal.phase in (Phase.PAUSED, Phase.STOPPING_SERVICES):
                self._wait_for_pods_gone()
                self._delete_pods(VALIDATOR_APPS)
                self.crash("pods-gone")
                if self.settings.with_shutdown_host_gpu_clients:
                    journal, error = self._stop_services(journal)
                    if error is not None:
                        raise TransientError(error)
                    self.crash("services-stopped")
                    if journal.mode_change and self.settings.mode_change_delay > 0:
                        log.info(
                            "waiting %.0fs after stopping host services for a mode change",
                            self.settings.mode_change_delay,
                        )
                        if self.stop_event.wait(self.settings.mode_change_delay):
                            raise TransientError("the agent is stopping")
                journal = journal.at(Phase.APPLYING)
                self._patch({"metadata": {"annotations": {JOURNAL_ANNOTATION: encode(journal)}}}, "journal: applying")
                self.crash("applying")
            touched = True
            outcome = self._apply(journal)
        except Rebooted:
            raise
        except (TransientError, HostError) as exc:
            outcome = _Outcome(STATE_FAILED, str(exc), transient=True)
        except PermanentError as exc:
            outcome = _Outcome(STATE_FAILED, str(exc), permanent=True)
        except MigManagerError as exc:  # a GPU read outside mig-parted's apply (which reports its own)
            outcome = _Outcome(STATE_FAILED, f"MIG config {journal.target!r}: {exc}", transient=True)
        restored = True
        if outcome.state != STATE_SUCCESS and touched:
            restored = self._undo(journal)
        elif outcome.state != STATE_SUCCESS:
            # untouched GPUs hold the checkpoint, unless that is a recorded restore point
            restored = RESTORE_ANNOTATION not in _annotations(self.watcher.latest)
        self._finish(journal, outcome, started, restored)

    def _apply(self, journal: Journal) -> _Outcome:
        target = journal.target
        config = self.source.current()
        if config.spec is None:
            raise PermanentError(f"cannot use the MIG config file: {config.error}")
        try:
            if self.host.persist_selected_config(self.settings.host_mig_manager_state_file, target):
                log.info("host drop-in selects config=%s", target)
        except HostError as exc:
            raise TransientError(f"persisting the selected config on the host: {exc}") from exc
        log.info("Applying the selected MIG config to the node: config=%s", target)
        try:
            result = apply_config(self.backend, config.spec, target)
        except ConfigSelectionError as exc:
            raise PermanentError(f"MIG config {target!r}: {exc}") from exc
        self.crash("applied")
        details = "; ".join(result.lines())
        if result.ok:
            log.info("applied config=%s changed_gpus=%s", target, list(result.changed))
            warnings = self._warnings if target == self._warnings_target else ()
            return _Outcome(STATE_SUCCESS, with_warnings(text_applied(target, changed=True), warnings))
        if result.outcome is Outcome.REBOOT_REQUIRED:
            attempted = journal.reboot is not None and journal.reboot.config == target
            if attempted:
                return _Outcome(STATE_FAILED, text_not_rebooted(target), permanent=True)
            if self.settings.with_reboot:
                self._reboot(journal)
            return _Outcome(
                STATE_FAILED,
                f"MIG config {target!r}: reboot required to change the MIG mode and WITH_REBOOT is not set; "
                f"the pending mode change was cancelled ({details})",
                permanent=True,
            )
        return _Outcome(STATE_FAILED, f"MIG config {target!r}: {details}", transient=True)

    def _reboot(self, journal: Journal) -> None:
        mark = RebootMark(self.host.boot_id(), journal.target)
        journal = journal.at(Phase.REBOOTING, reboot=mark)
        reason = f"rebooting the node to change the MIG mode for MIG config {journal.target!r}"
        self._patch(
            {
                "metadata": {
                    "labels": {STATE_LABEL: STATE_REBOOTING},
                    "annotations": {JOURNAL_ANNOTATION: encode(journal), REASON_ANNOTATION: reason},
                }
            },
            "state rebooting",
        )
        self.metrics.set_state(STATE_REBOOTING)
        self.metrics.reboots += 1
        self._event("Warning", EV_REBOOTING, reason[0].upper() + reason[1:])
        self.crash("rebooting")
        self.host.reboot()
        raise Rebooted

    def _undo(self, journal: Journal) -> bool:
        """Put the GPUs back to the journal's checkpoint if they differ from it; whether they hold it now."""
        if journal.checkpoint is None:
            return True
        try:
            before: NodeState = state_from_json(dict(journal.checkpoint), "journal checkpoint")
            pending = any((mode := self.backend.mig_mode(d.index)).pending != mode.current for d in before.devices)
            if not pending and fetch_state(self.backend) == before:
                return True
            log.warning("restoring the previous MIG geometry from the journal")
            result = restore_state(self.backend, before)
            if not result.ok:
                log.error("restoring the previous MIG geometry failed: %s", "; ".join(result.lines()))
            return result.ok
        except MigManagerError as exc:  # DeviceError included
            log.error("restoring the previous MIG geometry failed: %s", exc)
            return False

    def _finish(self, journal: Journal, outcome: _Outcome, started: float, restored: bool = True) -> None:
        """Every exit path: start host services, restore gates, set the final state, remove the journal; `restored`:
        the GPUs hold the journal's checkpoint again (else it is recorded for the next run)."""
        errors: list[str] = []
        for unit in restart_order(journal.services or ()):
            try:
                if self.host.unit(unit).active not in ACTIVE:
                    log.info("Restarting host GPU client unit=%s", unit)
                    self.host.start(unit, self.settings.service_start_timeout)
            except HostError as exc:
                errors.append(str(exc))
        if journal.services:
            self.crash("services-started")
        if errors:
            outcome = _Outcome(
                STATE_FAILED, f"{outcome.reason}; starting host services failed: {'; '.join(errors)}", transient=True
            )
        restore_point = None
        if outcome.state != STATE_SUCCESS and not restored and journal.checkpoint is not None:
            restore_point = json.dumps(journal.checkpoint, separators=(",", ":"), sort_keys=True)
            outcome.reason += (
                "; putting back the MIG geometry from before the change (before the first failed attempt) FAILED "
                f"(kept in the {RESTORE_ANNOTATION} annotation: the next run returns there if it fails)"
            )
        key: Key = (journal.target, self.source.current().digest)
        if outcome.state == STATE_SUCCESS:
            self._delete_pods((OPERATOR_VALIDATOR_APP,))
        else:
            keep_trying = restore_point is not None
            outcome.reason = self._failed(key, outcome.reason, permanent=outcome.permanent, keep_trying=keep_trying)
        inventory = self._refresh_inventory()
        node = self.watcher.latest
        settle = Settle(
            outcome.state, outcome.reason, journal.gates, inventory, restore_point=restore_point, restored=restored
        )
        patch = settle_patch(_labels(node), _annotations(node), settle)
        if patch is not None:
            self._patch(patch, f"state {outcome.state}, gates restored")
        elapsed = time.monotonic() - started
        self.metrics.observe_run(outcome.state, elapsed)
        self.metrics.set_state(outcome.state)
        if outcome.state == STATE_SUCCESS:
            self.attempts.clear()
            log.info(
                "Changed the %s node label to success: config=%s seconds=%.2f", STATE_LABEL, journal.target, elapsed
            )
            self._event("Normal", EV_SUCCESS, f"MIG config {journal.target!r} applied in {elapsed:.1f}s")
        else:
            log.error(
                "Changed the %s node label to failed: config=%s reason=%s", STATE_LABEL, journal.target, outcome.reason
            )
            self._event("Warning", EV_FAILED, f"MIG config {journal.target!r} failed: {outcome.reason}")
        self.crash("finished")

    # -- pods and services --------------------------------------------------------------------------------------------

    def _blocking(self, pod: Mapping[str, Any]) -> bool:
        meta = pod.get("metadata") or {}
        app = (meta.get("labels") or {}).get("app")
        if meta.get("namespace") == self.settings.default_gpu_clients_namespace and app in COMPONENT_APPS:
            return True
        owners = meta.get("ownerReferences") or []
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        return any(o.get("kind") == "DaemonSet" for o in owners) and CLIENT_GATE in selector

    def _wait_for_pods_gone(self) -> None:
        """Wait (list, then watch) until the components' pods and GPU client pods are gone from this node."""
        timeout = self.settings.pod_wait_timeout
        deadline = time.monotonic() + timeout
        while True:
            items, rv = self.kube.list_pods_on_node()
            self._pods_seen = items
            remaining = {
                (p["metadata"].get("namespace", ""), p["metadata"]["name"]) for p in items if self._blocking(p)
            }
            if not remaining:
                log.info("GPU clients in Kubernetes are shut down")
                return
            log.info(
                "Waiting for the GPU clients to shut down: pods=%s",
                ",".join(f"{ns}/{n}" for ns, n in sorted(remaining)),
            )
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    names = ", ".join(f"{ns}/{n}" for ns, n in sorted(remaining))
                    raise TransientError(f"timed out after {timeout:g}s waiting for pods to go away: {names}")
                if self.stop_event.is_set():
                    raise TransientError("the agent is stopping")
                try:
                    for kind, obj in self.kube.watch_pods_on_node(rv, min(left, self.settings.watch_timeout)):
                        meta = obj.get("metadata") or {}
                        rv = str(meta.get("resourceVersion") or rv)
                        if kind == "BOOKMARK":
                            continue
                        ref = (meta.get("namespace", ""), meta.get("name", ""))
                        if kind == "DELETED" or not self._blocking(obj):
                            remaining.discard(ref)
                        else:
                            remaining.add(ref)
                        if not remaining or self.stop_event.is_set():
                            break
                except TransientError as exc:
                    log.info("pod watch ended (%s); listing again", exc)
                    self.stop_event.wait(0.1)
                    break
            if not remaining:
                log.info("GPU clients in Kubernetes are shut down")
                return

    def _delete_pods(self, apps: Sequence[str]) -> None:
        ns = self.settings.default_gpu_clients_namespace
        for pod in self._pods_seen:
            meta = pod.get("metadata") or {}
            if meta.get("namespace") == ns and (meta.get("labels") or {}).get("app") in apps:
                log.info("deleting pod %s/%s", ns, meta.get("name"))
                try:
                    self.kube.delete_pod(ns, meta["name"])
                except TransientError as exc:
                    log.warning("could not delete pod %s/%s: %s", ns, meta.get("name"), exc)

    def _stop_services(self, journal: Journal) -> tuple[Journal, str | None]:
        """Record the units to start again afterwards in the journal, then stop the active ones (NVIDIA's rules)."""
        s = self.settings
        if journal.services is None:
            units = services_to_stop(self.clients, journal.mode_change, s.host_kubelet_systemd_service)
            remembered: list[str] = []
            for name in units:
                action, why = stop_decision(self.host.unit(name))
                log.info("Host GPU client unit=%s action=%s (%s)", name, action.value, why)
                if action is not StopAction.SKIP:
                    remembered.append(name)
            journal = journal.at(Phase.STOPPING_SERVICES, services=tuple(remembered))
            self._patch(
                {"metadata": {"annotations": {JOURNAL_ANNOTATION: encode(journal)}}}, "journal: services to stop"
            )
        try:
            for name in journal.services or ():
                if self.host.unit(name).active in ACTIVE:
                    log.info("Shutting down host GPU client unit=%s", name)
                    self.host.stop(name, s.service_stop_timeout)
        except HostError as exc:
            return journal, f"stopping host services: {exc}"
        return journal, None
