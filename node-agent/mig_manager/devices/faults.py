"""Injectable faults for the simulated backend: "the Kth call of this operation fails with this NVML error".

A fault is a JSON object::

    {"op": "create_gpu_instance" | "*", "code": "INSUFFICIENT_RESOURCES", "gpu": 0,
     "after": 0, "times": 1, "probability": 1.0, "seed": 0}

- `op`: a `GpuBackend` method name, or `*` for every backend call (reads included).
- `code`: an `NvmlCode` name other than SUCCESS.
- `gpu` (optional): only calls on this GPU index match (for `reset`, calls whose indices include it; `gpus()` has no
  index and matches only faults without `gpu`).
- `after` (default 0): the first `after` matching calls pass.
- `times` (default 1): how many times the fault fires; -1 fires on every matching call after `after`.
- `probability` (default 1.0) with `seed` (default 0): each eligible call fires with this probability, decided by a
  generator seeded with (seed, fault position, call number), so a run is reproducible across processes.

Every matching call counts (`seen`), whether or not it fires (`fired`); the counters live next to the fault, so faults
configured in the state file count across processes. Pure: no I/O here.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MigManagerError
from .base import MUTATING_OPS, READ_ONLY_OPS, NvmlCode

# The GpuBackend methods a fault can name.
FAULTABLE_OPS: tuple[str, ...] = READ_ONLY_OPS + MUTATING_OPS

_KEYS = ("op", "code", "gpu", "after", "times", "probability", "seed", "seen", "fired")


class FaultSpecError(MigManagerError):
    """A fault description is malformed."""


@dataclass
class Fault:
    op: str
    code: NvmlCode
    gpu: int | None = None
    after: int = 0
    times: int = 1
    probability: float = 1.0
    seed: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, op: str, gpus: Sequence[int]) -> bool:
        if self.op not in ("*", op):
            return False
        return self.gpu is None or self.gpu in gpus

    @property
    def exhausted(self) -> bool:
        return self.times >= 0 and self.fired >= self.times

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "code": self.code.name}
        if self.gpu is not None:
            out["gpu"] = self.gpu
        out.update(after=self.after, times=self.times, probability=self.probability, seed=self.seed)
        out.update(seen=self.seen, fired=self.fired)
        return out


def _int(raw: Mapping[str, Any], key: str, default: int, where: str, minimum: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultSpecError(f"{where}: {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_fault(raw: Any, where: str = "fault") -> Fault:
    """Validate one fault object; the message names the key and what would be valid."""
    if not isinstance(raw, Mapping):
        raise FaultSpecError(f"{where}: must be an object like {{'op': 'reset', 'code': 'IN_USE'}}, got {raw!r}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise FaultSpecError(f"{where}: unknown keys {', '.join(unknown)}; valid keys: {', '.join(_KEYS)}")
    op = raw.get("op")
    if op != "*" and op not in FAULTABLE_OPS:
        raise FaultSpecError(f"{where}: 'op' {op!r} is not a backend operation; valid: *, {', '.join(FAULTABLE_OPS)}")
    codes = [c.name for c in NvmlCode if c is not NvmlCode.SUCCESS]
    code = raw.get("code")
    if not isinstance(code, str) or code.upper().removeprefix("NVML_ERROR_") not in codes:
        raise FaultSpecError(f"{where}: 'code' {code!r} is not an NVML error; valid: {', '.join(codes)}")
    gpu = raw.get("gpu")
    if gpu is not None and (isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0):
        raise FaultSpecError(f"{where}: 'gpu' must be a GPU index (an integer >= 0), got {gpu!r}")
    probability = raw.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0.0 <= probability <= 1.0:
        raise FaultSpecError(f"{where}: 'probability' must be a number from 0 to 1, got {probability!r}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaultSpecError(f"{where}: 'seed' must be an integer, got {seed!r}")
    return Fault(
        op=op,
        code=NvmlCode[code.upper().removeprefix("NVML_ERROR_")],
        gpu=gpu,
        after=_int(raw, "after", 0, where, 0),
        times=_int(raw, "times", 1, where, -1),
        probability=float(probability),
        seed=seed,
        seen=_int(raw, "seen", 0, where, 0),
        fired=_int(raw, "fired", 0, where, 0),
    )


def parse_faults(raw: Any, where: str = "faults") -> list[Fault]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FaultSpecError(f"{where}: must be a JSON list of fault objects, got {type(raw).__name__}")
    return [parse_fault(item, f"{where}[{i}]") for i, item in enumerate(raw)]


def first_firing(faults: Sequence[Fault], op: str, gpus: Sequence[int]) -> Fault | None:
    """Count this call against every matching fault; return the first that fires (its `fired` is incremented)."""
    firing: Fault | None = None
    for position, fault in enumerate(faults):
        if not fault.matches(op, gpus):
            continue
        fault.seen += 1
        if firing is not None or fault.seen <= fault.after or fault.exhausted:
            continue
        if fault.probability < 1.0:
            roll = random.Random(f"{fault.seed}:{position}:{fault.seen}").random()
            if roll >= fault.probability:
                continue
        fault.fired += 1
        firing = fault
    return firing
