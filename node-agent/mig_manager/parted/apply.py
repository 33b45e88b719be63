"""`assert`, `apply` and `restore` over a GpuBackend, with NVIDIA's hook orchestration (mig-facts 2.2-2.4, 2.6).

Apply plans every GPU first (no GPU is touched when any GPU's geometry is invalid), then changes MIG modes (only of
GPUs whose mode differs), then instances (only of GPUs whose instances differ): destroy, create at the planned
placements, read back and compare. Every GPU changed by one apply is recorded with its previous state; when any step
fails, every one of them is put back (mode and instances at their placements), so the node ends all-old or all-new.
A mode change that needs a reset or a reboot is reported as such, never as success, and is left pending.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..catalog import ProfileTable
from ..devices.base import DeviceError, GpuBackend, GpuInstance, MigMode, MigModeState, NvmlCode, ResetError
from ..planner import NodePlan, plan_node
from ..spec import MigPartedSpec, select_config
from .hooks import APPLY_EXIT, APPLY_START, PRE_APPLY_CONFIG, PRE_APPLY_MODE, HookError, HookRunner
from .node import (
    Gpu,
    PartedError,
    StepError,
    call,
    ci_name,
    current_devices,
    describe_instances,
    discover,
    format_devices,
    gi_name,
    gi_profile_by_id,
)
from .state import CiState, GiState, NodeState, geometry

log = logging.getLogger("mig_manager.parted")

APPLIED_MESSAGE = "MIG configuration applied successfully"
RESTORED_MESSAGE = "MIG state restored successfully"
ASSERT_OK_MESSAGE = "Selected MIG configuration currently applied"
ASSERT_MODE_OK_MESSAGE = "Selected MIG mode settings from configuration currently applied"
ASSERT_FAILED_MESSAGE = "Assertion failure: selected configuration not currently applied"


def mode_name(mode: MigMode) -> str:
    return "enabled" if mode == MigMode.ENABLED else "disabled"


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILED = "failed"
    RESET_REQUIRED = "reset required"
    IN_USE = "in use"
    REBOOT_REQUIRED = "reboot required"


@dataclass(frozen=True)
class GpuReport:
    """What happened to one GPU: `status` is unchanged, mode set, configured, restored, pending or failed."""

    index: int
    description: str
    status: str
    detail: str = ""


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of an apply or restore; `message` is the one line a user sees first."""

    outcome: Outcome
    message: str
    gpus: tuple[GpuReport, ...] = ()
    changed: tuple[int, ...] = ()
    rolled_back: tuple[int, ...] = ()
    rollback_errors: tuple[str, ...] = ()
    config: str | None = None
    details: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.SUCCESS

    def lines(self) -> list[str]:
        return [self.message, *self.details, *(f"rollback: {e}" for e in self.rollback_errors)]


def _failed(message: str, details: Sequence[str] = (), config: str | None = None) -> ApplyResult:
    return ApplyResult(Outcome.FAILED, message, config=config, details=tuple(details))


# ---------------------------------------------------------------------------------------------------------------------
# Targets: what each GPU should end up as


@dataclass(frozen=True)
class Target:
    """The desired state of one GPU: its mode, and the instances at placements (None: leave instances alone).

    `wanted` is the canonical-name view that counts as "already applied" for apply (NVIDIA compares names and counts,
    not placements); without it (restore) only the exact geometry counts.
    """

    gpu: Gpu
    mode: MigMode
    instances: tuple[GiState, ...] | None
    wanted: Mapping[str, int] | None = None

    def matches(self, current: Sequence[GpuInstance]) -> bool:
        if self.instances is None:
            return True
        if self.wanted is not None:
            empty_gi = any(not gi.compute_instances for gi in current)
            return not empty_gi and current_devices(self.gpu.table, current) == dict(self.wanted)
        return geometry(current) == geometry(self.instances)


def _targets_from_plan(gpus: Sequence[Gpu], node_plan: NodePlan, mode_only: bool) -> list[Target]:
    by_index = {g.index: g for g in gpus}
    targets: list[Target] = []
    for d in node_plan.gpus:
        gpu = by_index[d.gpu.index]
        if not d.mig_enabled:
            targets.append(Target(gpu, MigMode.DISABLED, None))
            continue
        assert d.plan is not None
        instances = tuple(
            GiState(
                gi.profile.id,
                gi.placement,
                tuple(CiState(ci.profile.id, ci.placement) for ci in gi.compute_instances),
            )
            for gi in d.plan.instances
        )
        targets.append(Target(gpu, MigMode.ENABLED, None if mode_only else instances, d.plan.devices()))
    return targets


def _gpus_text(gpus: Sequence[Gpu]) -> str:
    if len(gpus) == 1:
        return gpus[0].describe()
    models = {g.describe().split(" ", 2)[-1] for g in gpus}
    if len(models) == 1:
        return f"GPUs {', '.join(str(g.index) for g in gpus)} {models.pop()}"
    return "GPUs " + ", ".join(g.describe().removeprefix("GPU ") for g in gpus)


def plan_errors(gpus: Sequence[Gpu], node_plan: NodePlan) -> list[str]:
    """Each distinct planning failure once, naming the GPUs it applies to."""
    by_message: dict[str, list[Gpu]] = {}
    by_index = {g.index: g for g in gpus}
    for d in node_plan.gpus:
        if d.error is not None:
            by_message.setdefault(str(d.error), []).append(by_index[d.gpu.index])
    return [f"{_gpus_text(members)}: {message}" for message, members in by_message.items()]


# ---------------------------------------------------------------------------------------------------------------------
# Assert


@dataclass(frozen=True)
class GpuCheck:
    """One GPU under `assert`: whether an entry selects it, whether it matches, and why not."""

    index: int
    description: str
    selected: bool
    matched: bool
    reason: str = ""
    desired_mode: MigMode | None = None
    current_mode: MigMode | None = None
    desired_devices: Mapping[str, int] | None = None
    current_devices: Mapping[str, int] | None = None


@dataclass(frozen=True)
class AssertResult:
    config: str
    mode_only: bool
    gpus: tuple[GpuCheck, ...]

    @property
    def ok(self) -> bool:
        return all(g.matched for g in self.gpus)

    @property
    def message(self) -> str:
        if not self.ok:
            return ASSERT_FAILED_MESSAGE
        return ASSERT_MODE_OK_MESSAGE if self.mode_only else ASSERT_OK_MESSAGE

    def mismatches(self) -> list[str]:
        return [f"{g.description}: {g.reason}" for g in self.gpus if not g.matched]


def _mode_reason(state: MigModeState, desired: MigMode) -> str:
    if state.current != desired:
        reason = f"MIG mode is {mode_name(state.current)}, the config wants it {mode_name(desired)}"
        if state.pending == desired:
            reason += " (the change is pending a GPU reset or reboot)"
        return reason
    if state.pending != desired:
        return f"MIG mode is {mode_name(state.current)} but a change to {mode_name(state.pending)} is pending"
    return ""


def assert_config(
    backend: GpuBackend, spec: MigPartedSpec, config: str | None, *, mode_only: bool = False
) -> AssertResult:
    """Compare the node with a config: MIG mode, and (unless `mode_only`) the canonical instance names and counts.

    GPUs that no entry selects are reported as not selected and count as matching. Raises StepError when the GPUs
    cannot be read and ConfigSelectionError for an unknown config.
    """
    name, _ = select_config(spec, config)
    gpus = discover(backend)
    node_plan = plan_node(spec, name, [g.node for g in gpus])
    by_index = {g.index: g for g in gpus}
    checks: list[GpuCheck] = []
    for node_gpu in node_plan.untouched:
        checks.append(
            GpuCheck(
                node_gpu.index,
                by_index[node_gpu.index].describe(),
                selected=False,
                matched=True,
                reason="no entry of the config selects it",
            )
        )
    for d in node_plan.gpus:
        gpu = by_index[d.gpu.index]
        where = gpu.describe()
        desired = MigMode.ENABLED if d.mig_enabled else MigMode.DISABLED
        if d.error is not None:
            checks.append(GpuCheck(gpu.index, where, True, False, str(d.error), desired_mode=desired))
            continue
        state = call(where, "reading MIG mode", backend.mig_mode, gpu.index)
        reason = _mode_reason(state, desired)
        wanted = d.plan.devices() if d.plan is not None else None
        have: dict[str, int] | None = None
        if not reason and not mode_only and desired == MigMode.ENABLED:
            instances = call(where, "listing GPU instances", backend.gpu_instances, gpu.index)
            have = current_devices(gpu.table, instances)
            empty = [gi for gi in instances if not gi.compute_instances]
            if wanted is not None and have != wanted:
                reason = f"has {format_devices(have)}, the config wants {format_devices(wanted)}"
            elif empty:
                reason = f"has GPU instances without compute instances: {describe_instances(gpu.table, empty)}"
        checks.append(GpuCheck(gpu.index, where, True, not reason, reason, desired, state.current, wanted, have))
    checks.sort(key=lambda c: c.index)
    return AssertResult(name, mode_only, tuple(checks))


# ---------------------------------------------------------------------------------------------------------------------
# The engine: change GPUs towards targets, with an undo log


@dataclass
class _Saved:
    gpu: Gpu
    mode: MigModeState
    instances: tuple[GiState, ...]


class _RollbackNeeded(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Engine:
    backend: GpuBackend
    skip_reset: bool
    saved: dict[int, _Saved] = field(default_factory=dict)
    reports: dict[int, GpuReport] = field(default_factory=dict)

    # -- primitives ---------------------------------------------------------------------------------------------------

    def save(self, gpu: Gpu, mode: MigModeState, instances: Sequence[GpuInstance]) -> None:
        """Record a GPU's state before this apply first changes it (later records are ignored)."""
        if gpu.index not in self.saved:
            self.saved[gpu.index] = _Saved(gpu, mode, geometry(instances))

    def report(self, gpu: Gpu, status: str, detail: str = "") -> None:
        self.reports[gpu.index] = GpuReport(gpu.index, gpu.describe(), status, detail)

    def mode(self, gpu: Gpu) -> MigModeState:
        return call(gpu.describe(), "reading MIG mode", self.backend.mig_mode, gpu.index)

    def instances(self, gpu: Gpu) -> list[GpuInstance]:
        return call(gpu.describe(), "listing GPU instances", self.backend.gpu_instances, gpu.index)

    def clear(self, gpu: Gpu, instances: Sequence[GpuInstance]) -> None:
        """Destroy every compute instance, then every GPU instance."""
        where, table = gpu.describe(), gpu.table
        for gi in instances:
            gname = f"{gi_name(table, gi.profile_id)} at {gi.placement}"
            for ci in gi.compute_instances:
                step = f"destroying compute instance {ci_name(table, gi.profile_id, ci.profile_id)} in {gname}"
                call(where, step, self.backend.destroy_compute_instance, gpu.index, gi.id, ci.id)
            call(where, f"destroying {gname}", self.backend.destroy_gpu_instance, gpu.index, gi.id)

    def create(self, gpu: Gpu, instances: Sequence[GiState]) -> None:
        """Create GPU instances at their placements, each followed by its compute instances at theirs."""
        where, table = gpu.describe(), gpu.table
        for gi in instances:
            gname = f"{gi_name(table, gi.profile_id)} at {gi.placement}"
            created = call(
                where, f"creating {gname}", self.backend.create_gpu_instance, gpu.index, gi.profile_id, gi.placement
            )
            for ci in gi.compute_instances:
                cname = ci_name(table, gi.profile_id, ci.profile_id)
                call(
                    where,
                    f"creating compute instance {cname} at {ci.placement} in {gname}",
                    self.backend.create_compute_instance,
                    gpu.index,
                    created.id,
                    ci.profile_id,
                    ci.placement,
                )

    def verify(self, gpu: Gpu, instances: Sequence[GiState]) -> None:
        """Read the GPU back and require exactly the given geometry."""
        found = self.instances(gpu)
        if geometry(found) != geometry(instances):
            raise _RollbackNeeded(
                f"{gpu.describe()}: read-back after creating the instances does not match the plan: expected "
                f"{_describe_states(gpu.table, instances)}, found {describe_instances(gpu.table, found)}"
            )

    def set_mode(self, gpu: Gpu, mode: MigMode) -> NvmlCode:
        return call(
            gpu.describe(), f"setting MIG mode to {mode_name(mode)}", self.backend.set_mig_mode, gpu.index, mode
        )

    def reset(self, gpus: Sequence[Gpu]) -> None:
        """Reset GPUs; ResetError passes through (the caller tells in-use from reboot-required)."""
        indices = [g.index for g in gpus]
        try:
            self.backend.reset(indices)
        except ResetError:
            raise
        except DeviceError as exc:
            raise StepError(_gpus_text(gpus), "resetting the GPU" + ("s" if len(gpus) > 1 else ""), exc.code) from exc

    # -- rollback -----------------------------------------------------------------------------------------------------

    def rollback(self) -> tuple[list[int], list[str]]:
        """Put every GPU changed so far back: instances gone, mode back (with a reset), instances recreated."""
        errors: list[str] = []
        broken: set[int] = set()
        need_reset: list[Gpu] = []
        for index, saved in self.saved.items():
            gpu = saved.gpu
            try:
                state = self.mode(gpu)
                if state.current == MigMode.ENABLED:
                    self.clear(gpu, self.instances(gpu))
                old = saved.mode.current
                if state.current != old or state.pending != old:
                    self.set_mode(gpu, old)
                    if self.mode(gpu).current != old:
                        need_reset.append(gpu)
            except (StepError, _RollbackNeeded) as exc:
                errors.append(str(exc))
                broken.add(index)
        if need_reset:
            if self.skip_reset:
                for gpu in need_reset:
                    errors.append(
                        f"{gpu.describe()}: MIG mode back to {mode_name(self.saved[gpu.index].mode.current)}"
                        " is pending: reset required (resets skipped by --skip-reset)"
                    )
                    broken.add(gpu.index)
            else:
                try:
                    self.reset(need_reset)
                except DeviceError as exc:
                    errors.append(f"{_gpus_text(need_reset)}: resetting to restore the MIG mode failed: {exc}")
                    broken.update(g.index for g in need_reset)
        for index, saved in self.saved.items():
            if index in broken or saved.mode.current != MigMode.ENABLED:
                continue
            try:
                if saved.instances:
                    self.create(saved.gpu, saved.instances)
                self.verify(saved.gpu, saved.instances)
            except (StepError, _RollbackNeeded) as exc:
                errors.append(str(exc))
                broken.add(index)
        restored = [i for i in self.saved if i not in broken]
        for i in restored:
            self.report(self.saved[i].gpu, "restored", "previous MIG mode and instances restored")
        return restored, errors


def _describe_states(table: ProfileTable | None, instances: Sequence[GiState]) -> str:
    if not instances:
        return "no instances"
    parts = []
    for gi in instances:
        cis = ", ".join(f"{ci_name(table, gi.profile_id, ci.profile_id)}@{ci.placement}" for ci in gi.compute_instances)
        parts.append(f"{gi_name(table, gi.profile_id)}@{gi.placement}[{cis}]")
    return ", ".join(parts)


def _pending_result(
    engine: _Engine, outcome: Outcome, gpus: Sequence[Gpu], want: Mapping[int, MigMode], why: str, config: str | None
) -> ApplyResult:
    details = []
    for gpu in gpus:
        engine.report(gpu, "pending", f"{outcome.value}: {why}")
        details.append(
            f"{gpu.describe()}: MIG mode change to {mode_name(want[gpu.index])} is pending: {outcome.value} ({why})"
        )
    message = f"MIG mode change pending on {_gpus_text(gpus)}: {outcome.value}; the configuration is NOT applied"
    return ApplyResult(
        outcome,
        message,
        tuple(engine.reports[i] for i in sorted(engine.reports)),
        changed=tuple(sorted(engine.saved)),
        config=config,
        details=tuple(details),
    )


def _processes(backend: GpuBackend, gpus: Sequence[Gpu]) -> str:
    pids: list[str] = []
    for gpu in gpus:
        try:
            pids.extend(str(p) for p in backend.processes(gpu.index))
        except DeviceError:
            continue
    return ", ".join(pids)


def converge(
    backend: GpuBackend,
    targets: Sequence[Target],
    hooks: HookRunner,
    *,
    skip_reset: bool = False,
    mode_only: bool = False,
    config: str | None = None,
    success_message: str = APPLIED_MESSAGE,
) -> ApplyResult:
    """Bring every target GPU to its target state: modes first, then instances; undo everything on failure."""
    engine = _Engine(backend, skip_reset)
    before: dict[int, tuple[MigModeState, list[GpuInstance]]] = {}
    try:
        for t in targets:
            state = engine.mode(t.gpu)
            instances = engine.instances(t.gpu) if state.current == MigMode.ENABLED else []
            before[t.gpu.index] = (state, instances)
    except StepError as exc:
        return _failed(f"{exc}; nothing was changed", config=config)

    try:
        # Mode: only GPUs whose mode (or pending mode) differs.
        mode_todo = [t for t in targets if before[t.gpu.index][0] != MigModeState(t.mode, t.mode)]
        want = {t.gpu.index: t.mode for t in targets}
        if mode_todo:
            hooks.run(PRE_APPLY_MODE)
        pending: list[Gpu] = []
        reboot: list[Gpu] = []
        for t in mode_todo:
            state, instances = before[t.gpu.index]
            engine.save(t.gpu, state, instances)
            if state.current == MigMode.ENABLED and t.mode == MigMode.DISABLED and instances:
                engine.clear(t.gpu, instances)
            # The activation status does not tell a reset from a reboot (Ampere reports RESET_REQUIRED for both);
            # the reset below does: it fails with RESET_REQUIRED where only a reboot helps.
            activation = engine.set_mode(t.gpu, t.mode)
            engine.report(t.gpu, "mode set", f"MIG mode set to {mode_name(t.mode)}")
            if engine.mode(t.gpu).current != t.mode:
                log.debug("%s: MIG mode change pending (activation status %s)", t.gpu.describe(), activation.value)
                pending.append(t.gpu)
        if pending and skip_reset:
            return _pending_result(
                engine, Outcome.RESET_REQUIRED, pending, want, "resets skipped by --skip-reset", config
            )
        if pending:
            try:
                engine.reset(pending)
            except ResetError as exc:
                if exc.code == NvmlCode.IN_USE:
                    pids = _processes(backend, pending)
                    why = f"the GPU is in use{' by processes ' + pids if pids else ''} and cannot be reset"
                    return _pending_result(engine, Outcome.IN_USE, pending, want, why, config)
                if exc.code == NvmlCode.RESET_REQUIRED:
                    reboot.extend(pending)
                    pending = []
                else:
                    raise StepError(_gpus_text(pending), "resetting the GPUs", exc.code) from exc
            for gpu in pending:
                if engine.mode(gpu).current != want[gpu.index]:
                    raise _RollbackNeeded(
                        f"{gpu.describe()}: MIG mode is still not {mode_name(want[gpu.index])} after the GPU reset"
                    )
                engine.report(gpu, "mode set", f"MIG mode set to {mode_name(want[gpu.index])} (after a GPU reset)")
        if reboot:
            return _pending_result(
                engine, Outcome.REBOOT_REQUIRED, reboot, want, "the GPU cannot be reset here; reboot the node", config
            )
        if mode_only:
            return _success(engine, targets, config, success_message)

        # Instances: only GPUs whose instances differ.
        config_todo: list[tuple[Target, list[GpuInstance]]] = []
        for t in targets:
            if t.mode != MigMode.ENABLED or t.instances is None:
                continue
            touched = t.gpu.index in engine.saved
            current = engine.instances(t.gpu) if touched else before[t.gpu.index][1]
            if not t.matches(current):
                config_todo.append((t, current))
        if config_todo:
            hooks.run(PRE_APPLY_CONFIG)
        for t, current in config_todo:
            assert t.instances is not None
            state, instances = before[t.gpu.index]
            engine.save(t.gpu, state, instances)
            engine.clear(t.gpu, current)
            engine.create(t.gpu, t.instances)
            engine.verify(t.gpu, t.instances)
            engine.report(t.gpu, "configured", _describe_states(t.gpu.table, t.instances))
    except (StepError, _RollbackNeeded, HookError) as exc:
        text = exc.message if isinstance(exc, _RollbackNeeded) else str(exc)
        if isinstance(exc, HookError):
            text = f"error running {exc.hook} hook: {exc}"
        if not engine.saved:
            return _failed(f"{text}; nothing was changed", config=config)
        restored, errors = engine.rollback()
        if errors:
            tail = f"; restoring the previous state FAILED for some GPUs ({len(errors)} error(s))"
        elif len(restored) == 1:
            tail = "; restored the previous geometry"
        else:
            tail = f"; restored the previous geometry of {_gpus_text([engine.saved[i].gpu for i in restored])}"
        return ApplyResult(
            Outcome.FAILED,
            text + tail,
            tuple(engine.reports[i] for i in sorted(engine.reports)),
            changed=tuple(sorted(engine.saved)),
            rolled_back=tuple(restored),
            rollback_errors=tuple(errors),
            config=config,
        )
    return _success(engine, targets, config, success_message)


def _success(engine: _Engine, targets: Sequence[Target], config: str | None, message: str) -> ApplyResult:
    for t in targets:
        if t.gpu.index not in engine.reports:
            engine.report(t.gpu, "unchanged", "already matches")
    return ApplyResult(
        Outcome.SUCCESS,
        message,
        tuple(engine.reports[i] for i in sorted(engine.reports)),
        changed=tuple(sorted(engine.saved)),
        config=config,
    )


def with_hooks(hooks: HookRunner | None, body: Callable[[HookRunner], ApplyResult]) -> ApplyResult:
    """NVIDIA's orchestration: apply-start (its failure aborts), the body, then apply-exit whatever happened.

    An apply-exit failure fails an otherwise successful apply; after a failed apply it is only logged.
    """
    runner = hooks if hooks is not None else HookRunner(None, {})
    try:
        runner.run(APPLY_START)
    except HookError as exc:
        return _failed(f"error running apply-start hook: {exc}")
    result: ApplyResult | None = None
    try:
        result = body(runner)
    finally:
        try:
            runner.run(APPLY_EXIT)
        except HookError as exc:
            if result is not None and result.ok:
                result = replace(result, outcome=Outcome.FAILED, message=f"error running apply-exit hook: {exc}")
            else:
                log.error("error running apply-exit hook: %s", exc)
                if result is not None:
                    result = replace(result, details=(*result.details, f"error running apply-exit hook: {exc}"))
    assert result is not None
    return result


# ---------------------------------------------------------------------------------------------------------------------
# apply and restore


def apply_config(
    backend: GpuBackend,
    spec: MigPartedSpec,
    config: str | None,
    *,
    mode_only: bool = False,
    skip_reset: bool = False,
    hooks: HookRunner | None = None,
) -> ApplyResult:
    """Apply a config: plan every GPU (fail before touching any), then hooks, modes, instances; roll back on failure.

    Raises ConfigSelectionError for an unknown config; every other problem is in the result.
    """
    name, _ = select_config(spec, config)
    try:
        gpus = discover(backend)
    except StepError as exc:
        return _failed(f"{exc}; nothing was changed", config=name)
    node_plan = plan_node(spec, name, [g.node for g in gpus])
    if not node_plan.ok:
        errors = plan_errors(gpus, node_plan)
        return _failed(f"config {name!r} cannot be applied; no GPU was touched", errors, config=name)
    targets = _targets_from_plan(gpus, node_plan, mode_only)
    return with_hooks(
        hooks,
        lambda runner: converge(backend, targets, runner, skip_reset=skip_reset, mode_only=mode_only, config=name),
    )


def restore_targets(gpus: Sequence[Gpu], state: NodeState, mode_only: bool = False) -> list[Target]:
    """Targets from a checkpoint, checked against this node before anything is touched (raises PartedError)."""
    by_uuid = {g.info.uuid: g for g in gpus}
    problems: list[str] = []
    targets: list[Target] = []
    for device in state.devices:
        gpu = by_uuid.get(device.uuid)
        if gpu is None:
            problems.append(f"checkpoint GPU {device.uuid} is not on this node")
            continue
        if gpu.table is None:
            problems.append(f"{gpu.describe()} ({device.uuid}) is not MIG-capable")
            continue
        for gi in device.gpu_instances:
            profile = gi_profile_by_id(gpu.table, gi.profile_id)
            if profile is None:
                problems.append(f"{gpu.describe()}: GPU-instance profile ID {gi.profile_id} does not exist on this GPU")
            elif gi.placement not in profile.placements:
                problems.append(
                    f"{gpu.describe()}: {profile.name} cannot be placed at {gi.placement} "
                    f"(possible: {', '.join(str(p) for p in profile.placements)})"
                )
        enabled = device.mode == MigMode.ENABLED
        instances = device.gpu_instances if enabled and not mode_only else None
        targets.append(Target(gpu, device.mode, instances))
    if problems:
        raise PartedError("the checkpoint does not fit this node: " + "; ".join(problems))
    return targets


def restore_state(
    backend: GpuBackend,
    state: NodeState,
    *,
    mode_only: bool = False,
    skip_reset: bool = False,
    hooks: HookRunner | None = None,
) -> ApplyResult:
    """Put a checkpointed state back: modes, then GPU and compute instances at their recorded placements."""
    try:
        gpus = discover(backend)
        targets = restore_targets(gpus, state, mode_only)
    except PartedError as exc:
        return _failed(f"{exc}; nothing was changed")
    return with_hooks(
        hooks,
        lambda runner: converge(
            backend, targets, runner, skip_reset=skip_reset, mode_only=mode_only, success_message=RESTORED_MESSAGE
        ),
    )
