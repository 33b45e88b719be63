"""The reconfiguration journal, kept as a JSON annotation on the Node. Pure.

It is written in the same patch that sets the state `pending` and pauses the gates (so it exists before anything is
paused), updated at each phase boundary, and removed in the patch that restores the gates and sets the final state. A
restarted agent reads it to finish (or undo) the work: it has the gates' values before the pause, the host services to
start again, the GPUs' geometry before the change (a mig-parted checkpoint) and whether a reboot was attempted.

    {"version": "v1", "target": "all-balanced", "phase": "applying", "started": "2026-11-29T00:00:00Z",
     "gates": {"nvidia.com/gpu.deploy.device-plugin": "true", "nvidia.com/gpu.deploy.nvsm": null},
     "services": ["nvsm.service", "kubelet.service"], "modeChange": true,
     "reboot": {"bootId": "...", "config": "all-balanced"},
     "checkpoint": {"Version": "v1", "MigState": {"Devices": [...]}}}
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import JournalError

VERSION = "v1"


class Phase(enum.Enum):
    PAUSED = "paused"  # state pending, gates paused; next: wait for the pods, stop host services
    STOPPING_SERVICES = "stopping-services"  # `services` are (being) stopped
    APPLYING = "applying"  # the GPUs are (being) changed
    REBOOTING = "rebooting"  # a reboot was requested for a mode change


@dataclass(frozen=True)
class RebootMark:
    """A reboot requested for `config` while the host's boot id was `boot_id` (a different id: it happened)."""

    boot_id: str
    config: str


@dataclass(frozen=True)
class Journal:
    target: str
    phase: Phase
    gates: Mapping[str, str | None]
    started: str = ""
    services: tuple[str, ...] | None = None  # None: not decided yet
    mode_change: bool = False
    reboot: RebootMark | None = None
    checkpoint: Mapping[str, Any] | None = field(default=None, compare=False)

    def at(self, phase: Phase, **changes: Any) -> Journal:
        return replace(self, phase=phase, **changes)


def encode(journal: Journal) -> str:
    """The annotation value (compact JSON, fixed key order)."""
    data: dict[str, Any] = {
        "version": VERSION,
        "target": journal.target,
        "phase": journal.phase.value,
        "started": journal.started,
        "gates": dict(journal.gates),
        "modeChange": journal.mode_change,
    }
    if journal.services is not None:
        data["services"] = list(journal.services)
    if journal.reboot is not None:
        data["reboot"] = {"bootId": journal.reboot.boot_id, "config": journal.reboot.config}
    if journal.checkpoint is not None:
        data["checkpoint"] = journal.checkpoint
    return json.dumps(data, separators=(",", ":"))


def _fail(what: str) -> JournalError:
    return JournalError(f"journal annotation: {what}")


def decode(text: str) -> Journal:
    """Parse the annotation value; raise JournalError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise _fail("expected a JSON object")
    if data.get("version") != VERSION:
        raise _fail(f"version {data.get('version')!r} is not supported (expected {VERSION})")
    target = data.get("target")
    if not isinstance(target, str) or not target:
        raise _fail(f"target: expected a config name, got {target!r}")
    try:
        phase = Phase(data.get("phase"))
    except ValueError:
        valid = ", ".join(p.value for p in Phase)
        raise _fail(f"phase {data.get('phase')!r} is not one of {valid}") from None
    gates = data.get("gates")
    if not isinstance(gates, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in gates.items()
    ):
        raise _fail("gates: expected an object of label to value (or null)")
    services = data.get("services")
    if services is not None and (not isinstance(services, list) or not all(isinstance(s, str) for s in services)):
        raise _fail("services: expected a list of unit names")
    reboot = data.get("reboot")
    mark: RebootMark | None = None
    if reboot is not None:
        if not isinstance(reboot, dict) or not isinstance(reboot.get("bootId"), str):
            raise _fail('reboot: expected {"bootId": ..., "config": ...}')
        mark = RebootMark(reboot["bootId"], str(reboot.get("config", target)))
    checkpoint = data.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, dict):
        raise _fail("checkpoint: expected a mig-parted checkpoint object")
    started = data.get("started", "")
    return Journal(
        target=target,
        phase=phase,
        gates=dict(gates),
        started=started if isinstance(started, str) else "",
        services=tuple(services) if services is not None else None,
        mode_change=bool(data.get("modeChange", False)),
        reboot=mark,
        checkpoint=checkpoint,
    )
