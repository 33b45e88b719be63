"""mig-parted hooks: NVIDIA's hooks file (api/hooks/v1) and how hook commands run (mig-facts 2.4).

A hooks file maps a hook name (`apply-start`, `pre-apply-mode`, `pre-apply-config`, `apply-exit`) to a list of
commands. Each command is executed directly (no shell) with an environment made of the hook's own `envs` and the
`MIG_PARTED_*` flag values of the command line, the latter winning on a clash; nothing of the parent's environment is
passed on. The hooks of one name run in order and the first failure stops them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from ..errors import MigManagerError

log = logging.getLogger("mig_manager.parted.hooks")

APPLY_START = "apply-start"
PRE_APPLY_MODE = "pre-apply-mode"
PRE_APPLY_CONFIG = "pre-apply-config"
APPLY_EXIT = "apply-exit"
HOOK_NAMES = (APPLY_START, PRE_APPLY_MODE, PRE_APPLY_CONFIG, APPLY_EXIT)

# The `apply` flags that have an environment variable; every hook sees each of them (NVIDIA's GetHooksEnvsMap).
HOOK_FLAG_ENVS = (
    "MIG_PARTED_CONFIG_FILE",
    "MIG_PARTED_SELECTED_CONFIG",
    "MIG_PARTED_HOOKS_FILE",
    "MIG_PARTED_SKIP_RESET",
    "MIG_PARTED_MODE_CHANGE_ONLY",
)


class HooksFileError(MigManagerError):
    """A hooks file cannot be read or does not have the v1 shape."""


class HookError(MigManagerError):
    """A hook command could not be started or exited with a non-zero status."""

    def __init__(self, message: str, *, hook: str, position: int, returncode: int | None) -> None:
        super().__init__(message)
        self.hook = hook
        self.position = position
        self.returncode = returncode


@dataclass(frozen=True)
class HookSpec:
    """One command of a hook (NVIDIA's HookSpec)."""

    command: str
    args: tuple[str, ...] = ()
    envs: Mapping[str, str] = field(default_factory=dict)
    workdir: str = ""


@dataclass(frozen=True)
class HooksSpec:
    """A whole hooks file: `version` (not validated, as in NVIDIA's tool) and the hooks by name."""

    version: str = ""
    hooks: Mapping[str, tuple[HookSpec, ...]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.hooks)


def hook_flag_env(
    *,
    config_file: str | None,
    selected_config: str | None,
    hooks_file: str | None,
    skip_reset: bool,
    mode_only: bool,
) -> dict[str, str]:
    """The flag values every hook receives, formatted as Go's `%v` does (`true`/`false`, empty for unset strings)."""
    return {
        "MIG_PARTED_CONFIG_FILE": config_file or "",
        "MIG_PARTED_SELECTED_CONFIG": selected_config or "",
        "MIG_PARTED_HOOKS_FILE": hooks_file or "",
        "MIG_PARTED_SKIP_RESET": "true" if skip_reset else "false",
        "MIG_PARTED_MODE_CHANGE_ONLY": "true" if mode_only else "false",
    }


def hook_environment(hook: HookSpec, flag_env: Mapping[str, str]) -> dict[str, str]:
    """The child's whole environment: the hook's `envs`, overridden by the CLI-derived values; no parent variables."""
    env = dict(hook.envs)
    env.update(flag_env)
    return env


# ---------------------------------------------------------------------------------------------------------------------
# Parsing


def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _string(value: Any, source: str, path: str) -> str:
    if not isinstance(value, str):
        raise HooksFileError(f"{_where(source, path)}: must be a string, got {_kind(value)}; quote the value")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _hook(raw: Any, source: str, path: str) -> HookSpec:
    if not isinstance(raw, dict):
        raise HooksFileError(f"{_where(source, path)}: each hook must be a mapping with 'command', got {_kind(raw)}")
    command = raw.get("command")
    if command is None or command == "":
        raise HooksFileError(f"{_where(source, path)}: missing required field 'command'")
    command = _string(command, source, f"{path}.command")
    args_raw = raw.get("args")
    if args_raw is None:
        args: tuple[str, ...] = ()
    elif isinstance(args_raw, list):
        args = tuple(_string(a, source, f"{path}.args[{i}]") for i, a in enumerate(args_raw))
    else:
        raise HooksFileError(f"{_where(source, path)}.args: must be a list of strings, got {_kind(args_raw)}")
    envs_raw = raw.get("envs")
    envs: dict[str, str] = {}
    if envs_raw is not None:
        if not isinstance(envs_raw, dict):
            raise HooksFileError(f"{_where(source, path)}.envs: must be a mapping of names to strings")
        for key, value in envs_raw.items():
            name = _string(key, source, f"{path}.envs")
            if not name or "=" in name:
                raise HooksFileError(f"{_where(source, path)}.envs: {name!r} is not a valid variable name")
            envs[name] = _string(value, source, f"{path}.envs.{name}")
    workdir_raw = raw.get("workdir")
    workdir = "" if workdir_raw is None else _string(workdir_raw, source, f"{path}.workdir")
    return HookSpec(command=command, args=args, envs=envs, workdir=workdir)


def load_hooks(text: str, source: str = "<hooks>") -> HooksSpec:
    """Parse a hooks file. Unknown keys are ignored (as NVIDIA's decoder does); wrong shapes are errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HooksFileError(f"{source}: not valid YAML: {exc}") from None
    if raw is None:
        return HooksSpec()
    if not isinstance(raw, dict):
        raise HooksFileError(f"{source}: a hooks file must be a mapping with 'version' and 'hooks', got {_kind(raw)}")
    version_raw = raw.get("version")
    version = "" if version_raw is None else str(version_raw)
    hooks_raw = raw.get("hooks")
    if hooks_raw is None:
        return HooksSpec(version=version)
    if not isinstance(hooks_raw, dict):
        raise HooksFileError(
            f"{source}: hooks: must map hook names ({', '.join(HOOK_NAMES)}) to lists, got {_kind(hooks_raw)}"
        )
    hooks: dict[str, tuple[HookSpec, ...]] = {}
    for name, entries in hooks_raw.items():
        key = _string(name, source, "hooks")
        path = f"hooks.{key}"
        if entries is None:
            hooks[key] = ()
            continue
        if not isinstance(entries, list):
            raise HooksFileError(f"{source}: {path}: must be a list of hooks, got {_kind(entries)}")
        hooks[key] = tuple(_hook(e, source, f"{path}[{i}]") for i, e in enumerate(entries))
        if key not in HOOK_NAMES:
            log.warning("%s: hook %r is never run; known hooks: %s", source, key, ", ".join(HOOK_NAMES))
    return HooksSpec(version=version, hooks=hooks)


def load_hooks_file(path: str) -> HooksSpec:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise HooksFileError(f"{path}: cannot read the hooks file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise HooksFileError(f"{path}: the hooks file is not UTF-8 text: {exc.reason}") from None
    return load_hooks(text, path)


def dump_hooks(spec: HooksSpec) -> str:
    """YAML that `load_hooks` reads back to an equal spec."""
    data: dict[str, Any] = {"version": spec.version, "hooks": {}}
    for name, entries in spec.hooks.items():
        rows = []
        for h in entries:
            row: dict[str, Any] = {"command": h.command}
            if h.args:
                row["args"] = list(h.args)
            if h.envs:
                row["envs"] = dict(h.envs)
            if h.workdir:
                row["workdir"] = h.workdir
            rows.append(row)
        data["hooks"][name] = rows
    return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------------------------------------------------
# Running


def _resolve_command(command: str) -> str:
    """Like Go's exec.Command: a bare name is looked up in the *parent's* PATH; paths are used as given."""
    if os.sep in command:
        return command
    found = shutil.which(command)
    return found if found is not None else command


class HookRunner:
    """Runs the hooks of a HooksSpec; `output` receives the hooks' stdout and stderr (NVIDIA: only with --debug)."""

    def __init__(self, spec: HooksSpec | None, flag_env: Mapping[str, str], output: TextIO | None = None) -> None:
        self.spec = spec or HooksSpec()
        self.flag_env = dict(flag_env)
        self.output = output
        self.ran: list[str] = []

    def run(self, name: str) -> None:
        """Run every hook of `name` in order; raise HookError at the first one that fails. A missing name is a no-op."""
        entries = self.spec.hooks.get(name)
        if not entries:
            return
        self.ran.append(name)
        for position, hook in enumerate(entries):
            self._run_one(name, position, hook)

    def _run_one(self, name: str, position: int, hook: HookSpec) -> None:
        label = f"hook {name}[{position}] ({hook.command})"
        argv = [_resolve_command(hook.command), *hook.args]
        log.debug("running %s: %s", label, argv)
        try:
            result = subprocess.run(
                argv,
                env=hook_environment(hook, self.flag_env),
                cwd=hook.workdir or None,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise HookError(
                f"{label}: cannot run: {exc.strerror or exc}", hook=name, position=position, returncode=None
            ) from None
        out = result.stdout.decode(errors="replace")
        err = result.stderr.decode(errors="replace")
        if self.output is not None:
            self.output.write(out)
            self.output.write(err)
        if result.returncode != 0:
            tail = err.strip().splitlines()[-3:] if err.strip() else []
            detail = f": {' / '.join(tail)}" if tail else ""
            raise HookError(
                f"{label}: exited with status {result.returncode}{detail}",
                hook=name,
                position=position,
                returncode=result.returncode,
            )
