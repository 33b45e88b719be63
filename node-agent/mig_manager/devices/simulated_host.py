"""The simulated host's systemd units: one file-locked JSON file per simulated node, shared by the node agent
(which stops and starts GPU clients through it) and kubesim (which creates it and reboots the host). The format is
documented in docs/agent.md. The same locking and atomic replace as the simulated GPU state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

KIND = "mig-manager-simulated-host-services"
VERSION = 1


def default_services_path(gpu_state: str | os.PathLike[str]) -> Path:
    """`host-services.json` next to the simulated GPU host's state file."""
    return Path(gpu_state).resolve().parent / "host-services.json"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def init_host_services(
    path: str | os.PathLike[str],
    units: Mapping[str, Mapping[str, Any]],
    *,
    state_file: bool = False,
) -> Path:
    """Create (or replace) a simulated host's unit file. `units`: name -> {active, enabled, type, failStop,
    failStart}; `state_file`: the host has the mig-manager drop-in."""
    p = Path(path)
    data: dict[str, Any] = {
        "kind": KIND,
        "version": VERSION,
        "units": {
            name: {
                "active": u.get("active", "active"),
                "enabled": u.get("enabled", "enabled"),
                "type": u.get("type", "simple"),
                **{k: bool(u[k]) for k in ("failStop", "failStart") if k in u},
            }
            for name, u in units.items()
        },
        "stateFile": {"selectedConfig": None} if state_file else None,
        "daemonReloads": 0,
        "reboots": 0,
        "log": [],
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    with locked(p):
        write_json(p, data)
    return p


def read_host_services(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    with locked(p):
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
    return data
