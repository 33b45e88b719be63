"""The `mig-parted` command line: NVIDIA's flags and environment variables, plus an offline planner.

Offline: `validate`, `plan`, `generate-config`. On a node (`--backend nvml|simulated`): `apply`, `assert`, `export`,
`checkpoint`, `restore`; `sim init|show` create and print a simulated host.

Exit codes: 0 success, 1 the config is invalid or does not fit, an apply or restore failed or is pending a reset or
reboot, or an assert found a mismatch; 2 usage errors and unreadable or malformed files (config, hooks, checkpoint,
simulated state), including an unknown selected config (for `validate`, a malformed file is the answer "invalid" and
exits 1).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import yaml

from .catalog import default_catalog
from .errors import MigManagerError, PlanError
from .planner import (
    GpuDesired,
    NodeGpu,
    NodePlan,
    device_types_of_node,
    generate_config,
    plan_node,
)
from .spec import LoadedSpec, MigPartedSpec, PciId, dump_spec, load_spec_file, select_config

if TYPE_CHECKING:
    from .devices.base import GpuBackend
    from .parted import ApplyResult, HookRunner

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_COUNT_RE = re.compile(r"^(?P<model>.+?)[xX](?P<count>\d+)$")


class UsageError(MigManagerError):
    """Bad command-line input: exit 2."""


# ---------------------------------------------------------------------------------------------------------------------
# --gpus SPEC


def parse_gpus(text: str) -> list[NodeGpu]:
    """`MODEL[xN],...` into a node's GPUs, indexed in order.

    MODEL is a PCI device id (`0x233010DE`, optionally `:0x16C010DE` for the subsystem), an NVML product name or a
    catalog alias. A PCI id unknown to the catalog is a GPU without MIG, so mixed nodes can be described.
    """
    catalog = default_catalog()
    gpus: list[NodeGpu] = []
    if not text.strip():
        raise UsageError("--gpus is empty; expected MODEL[xN],... e.g. H100-80GBx8 or 0x233010DEx8")
    for raw in text.split(","):
        token = raw.strip()
        model_text, count = token, 1
        if _resolve_gpu(token) is None:
            match = _COUNT_RE.match(token)
            if match is not None:
                model_text, count = match.group("model").strip(), int(match.group("count"))
        if count < 1:
            raise UsageError(f"--gpus entry {token!r}: the count must be at least 1")
        resolved = _resolve_gpu(model_text)
        if resolved is None:
            try:
                catalog.lookup(model_text)
            except MigManagerError as exc:
                raise UsageError(f"--gpus entry {token!r}: {exc}") from exc
            raise AssertionError("unreachable")  # pragma: no cover
        pci, table, product = resolved
        for _ in range(count):
            gpus.append(NodeGpu(len(gpus), pci, table, product))
    return gpus


def _resolve_gpu(text: str) -> tuple[PciId, Any, str] | None:
    catalog = default_catalog()
    if text.lower().startswith("0x"):
        pci = PciId.parse(text)
        if pci is None:
            return None
        model = catalog.by_pci_id(pci)
        if model is None:
            return pci, None, f"PCI {pci}"
        return pci, model.table, model.product_name
    try:
        model = catalog.lookup(text)
    except MigManagerError:
        return None
    return model.pci_id, model.table, model.product_name


# ---------------------------------------------------------------------------------------------------------------------
# Output


def _gpu_json(d: GpuDesired) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": d.gpu.index,
        "model": d.gpu.table.model if d.gpu.table else None,
        "product_name": d.gpu.product_name,
        "pci_id": str(d.gpu.pci),
        "entry": d.entry,
        "mig_enabled": d.mig_enabled,
        "fits": d.error is None,
        "error": str(d.error) if d.error else None,
        "attempts": d.plan.attempts if d.plan else 0,
        "instances": [],
    }
    if d.plan is not None:
        out["instances"] = [
            {
                "profile": str(gi.profile.name),
                "profile_id": gi.profile.id,
                "placement": {"start": gi.placement.start, "size": gi.placement.size},
                "compute_instances": [
                    {"profile": str(ci.name), "profile_id": ci.profile.id, "start": ci.start, "size": ci.profile.slices}
                    for ci in gi.compute_instances
                ],
            }
            for gi in d.plan.instances
        ]
        out["devices"] = d.plan.devices()
    return out


def node_plan_json(result: NodePlan) -> dict[str, Any]:
    return {
        "config": result.config,
        "fits": result.ok,
        "gpus": [_gpu_json(d) for d in result.gpus],
        "untouched": [
            {"index": g.index, "pci_id": str(g.pci), "product_name": g.product_name} for g in result.untouched
        ],
        "notes": list(result.notes),
    }


def _gpu_block(d: GpuDesired) -> tuple[str, list[str]]:
    head = f"{d.gpu.product_name} ({d.gpu.pci}), entry {d.entry}"
    if d.error is not None:
        return f"{head}: does not fit", [f"  {d.error}"]
    if not d.mig_enabled:
        return f"{head}: MIG disabled", []
    assert d.plan is not None
    lines = []
    if d.plan.instances:
        lines.append(f"  {'GI':>3}  {'Profile':<14} {'ID':>3}  {'Placement':<9}  Compute instances (name@start)")
    for n, gi in enumerate(d.plan.instances):
        cis = ", ".join(f"{ci.name}@{ci.start}" for ci in gi.compute_instances)
        lines.append(f"  {n:>3}  {gi.profile.name!s:<14} {gi.profile.id:>3}  {gi.placement!s:<9}  {cis}")
    return f"{head}: MIG enabled, {len(d.plan.instances)} GPU instances", lines


def _indices(indices: Sequence[int]) -> str:
    if len(indices) == 1:
        return f"GPU {indices[0]}"
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"GPUs {indices[0]}-{indices[-1]}"
    return "GPUs " + ",".join(str(i) for i in indices)


def render_table(result: NodePlan) -> str:
    """A table of instances and placements per GPU, like `nvidia-smi mig -lgi`; identical GPUs share one block."""
    lines = [f"MIG config {result.config!r}: {'every GPU fits' if result.ok else 'does NOT fit'}"]
    blocks: list[tuple[list[int], tuple[str, list[str]]]] = []
    for d in result.gpus:
        block = _gpu_block(d)
        if blocks and blocks[-1][1] == block and blocks[-1][0][-1] == d.gpu.index - 1:
            blocks[-1][0].append(d.gpu.index)
        else:
            blocks.append(([d.gpu.index], block))
    for indices, (head, body) in blocks:
        lines.append(f"{_indices(indices)}: {head}")
        lines.extend(body)
    for g in result.untouched:
        lines.append(f"GPU {g.index}: {g.product_name} ({g.pci}): untouched (no entry selects it)")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def _dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------------------------------------------------
# Commands


@dataclass
class _Io:
    out: TextIO
    err: TextIO


def _load(path: str | None, io: _Io) -> LoadedSpec:
    if not path:
        raise UsageError("missing required flag -f/--config-file (or MIG_PARTED_CONFIG_FILE)")
    loaded = load_spec_file(path)
    for w in loaded.warnings:
        print(f"warning: {w.message}", file=io.err)
    return loaded


def _selected(spec: MigPartedSpec, name: str | None, every: bool) -> list[str]:
    if name or not every:
        return [select_config(spec, name)[0]]
    return list(spec.mig_configs)


def cmd_validate(args: argparse.Namespace, io: _Io) -> int:
    try:
        loaded = _load(args.config_file, io)
        names = _selected(loaded.spec, args.selected_config, every=True)
    except UsageError:
        raise
    except MigManagerError as exc:
        print(f"invalid: {exc}", file=io.err)
        return EXIT_FAILED
    if not names:
        # NVIDIA's parser accepts an empty document or a bare `version: v1`, but such a file can never be applied.
        print(
            f'invalid: {args.config_file}: holds no MIG configs; a config file needs "version": "v1" and at least one '
            'named config under "mig-configs"',
            file=io.err,
        )
        return EXIT_FAILED
    gpus = parse_gpus(args.gpus) if args.gpus else None
    failed = 0
    for name in names:
        if gpus is None:
            continue
        for message, indices in _errors_by_message(plan_node(loaded.spec, name, gpus)).items():
            failed += 1
            print(f"invalid: config {name!r} on {_indices(indices)}: {message}", file=io.err)
    if failed:
        return EXIT_FAILED
    what = f"config {names[0]!r}" if args.selected_config else f"{len(names)} config(s)"
    suffix = f" and fit{'s' if args.selected_config else ''} the GPUs" if gpus is not None else ""
    print(f"{what} valid{suffix}", file=io.out)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, io: _Io) -> int:
    gpus = parse_gpus(args.gpus)
    loaded = _load(args.config_file, io)
    result = plan_node(loaded.spec, args.selected_config, gpus)
    if args.output == "table":
        io.out.write(render_table(result) + "\n")
    else:
        io.out.write(_dump(node_plan_json(result), args.output))
    if not result.ok:
        for message, indices in _errors_by_message(result).items():
            print(f"error: {_indices(indices)}: {message}", file=io.err)
        return EXIT_FAILED
    return EXIT_OK


def _errors_by_message(result: NodePlan) -> dict[str, list[int]]:
    """Each distinct failure once, with the GPUs it applies to."""
    out: dict[str, list[int]] = {}
    for d in result.gpus:
        if d.error is not None:
            out.setdefault(str(d.error), []).append(d.gpu.index)
    return out


def cmd_generate_config(args: argparse.Namespace, io: _Io) -> int:
    gpus = parse_gpus(args.gpus)
    spec = generate_config(device_types_of_node(gpus))
    text = dump_spec(spec, args.output_format)
    if args.output_file:
        with open(args.output_file, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        io.out.write(text)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# Commands on a node: apply, assert, export, checkpoint, restore


def _failures() -> tuple[type[Exception], ...]:
    from .devices.base import DeviceError
    from .parted import PartedError

    return (PartedError, DeviceError)


def _env_bool(name: str) -> bool:
    """A boolean flag's environment variable, parsed like Go's strconv.ParseBool (urfave/cli)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return False
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise UsageError(f"{name}={value!r} is not a boolean; use true or false")


def make_backend(args: argparse.Namespace) -> GpuBackend:
    """The backend the flags name: `--backend simulated --sim-state PATH`, or NVML (the default without a state)."""
    kind = args.backend or ("simulated" if args.sim_state else "nvml")
    if kind == "simulated":
        if not args.sim_state:
            raise UsageError("--backend simulated needs --sim-state PATH (or MIG_SIM_STATE)")
        simulated = importlib.import_module("mig_manager.devices.simulated")
        backend: GpuBackend = simulated.SimulatedBackend(args.sim_state)
        return backend
    if kind == "nvml":
        try:
            nvml = importlib.import_module("mig_manager.devices.nvml")
        except ImportError as exc:
            raise UsageError(f"the NVML backend is not available: {exc}") from exc
        backend = nvml.NvmlBackend()
        return backend
    raise UsageError(f"unknown backend {kind!r}; valid: nvml, simulated")


def _hook_runner(args: argparse.Namespace, io: _Io) -> HookRunner:
    from .parted import HookRunner, hook_flag_env, load_hooks_file

    spec = load_hooks_file(args.hooks_file) if args.hooks_file else None
    flag_env = hook_flag_env(
        config_file=getattr(args, "config_file", None),
        selected_config=getattr(args, "selected_config", None),
        hooks_file=args.hooks_file,
        skip_reset=args.skip_reset,
        mode_only=args.mode_only,
    )
    if args.command == "restore":  # NVIDIA passes the variables of the command's own flags
        del flag_env["MIG_PARTED_CONFIG_FILE"], flag_env["MIG_PARTED_SELECTED_CONFIG"]
        flag_env["MIG_PARTED_CHECKPOINT_FILE"] = args.checkpoint_file or ""
    return HookRunner(spec, flag_env, output=io.err if args.debug else None)


def _report_result(result: ApplyResult, io: _Io, debug: bool) -> int:
    if debug:
        for g in result.gpus:
            print(f"{g.description}: {g.status}{': ' + g.detail if g.detail else ''}", file=io.err)
    if result.ok:
        print(result.message, file=io.out)
        return EXIT_OK
    print(f"error: {result.message}", file=io.err)
    for line in result.lines()[1:]:
        print(f"  {line}", file=io.err)
    return EXIT_FAILED


def cmd_apply(args: argparse.Namespace, io: _Io) -> int:
    from .parted import apply_config

    loaded = _load(args.config_file, io)
    name, _ = select_config(loaded.spec, args.selected_config)
    hooks = _hook_runner(args, io)
    backend = make_backend(args)
    result = apply_config(backend, loaded.spec, name, mode_only=args.mode_only, skip_reset=args.skip_reset, hooks=hooks)
    return _report_result(result, io, args.debug)


def cmd_assert(args: argparse.Namespace, io: _Io) -> int:
    from .parted import assert_config

    loaded = _load(args.config_file, io)
    name, _ = select_config(loaded.spec, args.selected_config)
    if args.valid_config:
        print("Selected MIG configuration is valid", file=io.out)
        return EXIT_OK
    result = assert_config(make_backend(args), loaded.spec, name, mode_only=args.mode_only)
    if args.debug:
        for g in result.gpus:
            state = "matches" if g.matched else "MISMATCH"
            print(f"{g.description}: {state}{': ' + g.reason if g.reason else ''}", file=io.err)
    if result.ok:
        print(result.message, file=io.out)
        return EXIT_OK
    print(result.message, file=io.err)
    for line in result.mismatches():
        print(f"  {line}", file=io.err)
    return EXIT_FAILED


def cmd_export(args: argparse.Namespace, io: _Io) -> int:
    from .parted import export_config

    if args.output_format not in ("yaml", "json"):
        raise UsageError(f"unrecognized 'output-format': {args.output_format}; valid: yaml, json")
    spec = export_config(make_backend(args), args.config_label)
    io.out.write(dump_spec(spec, args.output_format))
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace, io: _Io) -> int:
    from .parted import dump_state, fetch_state, write_state_file

    if not args.checkpoint_file:
        raise UsageError("missing required flag -f/--checkpoint-file (or MIG_PARTED_CHECKPOINT_FILE)")
    state = fetch_state(make_backend(args))
    if args.checkpoint_file == "-":
        io.out.write(dump_state(state))
    else:
        write_state_file(args.checkpoint_file, state)
        print(f"MIG state of {len(state.devices)} GPU(s) written to {args.checkpoint_file}", file=io.err)
    return EXIT_OK


def cmd_restore(args: argparse.Namespace, io: _Io) -> int:
    from .parted import load_state, load_state_file, restore_state

    if not args.checkpoint_file:
        raise UsageError("missing required flag -f/--checkpoint-file (or MIG_PARTED_CHECKPOINT_FILE)")
    if args.checkpoint_file == "-":
        state = load_state(sys.stdin.read(), "<stdin>")
    else:
        state = load_state_file(args.checkpoint_file)
    hooks = _hook_runner(args, io)
    result = restore_state(make_backend(args), state, mode_only=args.mode_only, skip_reset=args.skip_reset, hooks=hooks)
    return _report_result(result, io, args.debug)


def cmd_sim_init(args: argparse.Namespace, io: _Io) -> int:
    simulated = importlib.import_module("mig_manager.devices.simulated")
    gpus = parse_gpus(args.gpus)
    simulated.init_host(args.state, gpus, reboot_required_for_mode_change=args.reboot_required_for_mode_change)
    print(f"simulated host with {len(gpus)} GPU(s) written to {args.state}", file=io.out)
    return EXIT_OK


def cmd_sim_show(args: argparse.Namespace, io: _Io) -> int:
    simulated = importlib.import_module("mig_manager.devices.simulated")
    if not os.path.exists(args.state):
        raise UsageError(f"no simulated host at {args.state}; create one with `mig-parted sim init`")
    io.out.write(json.dumps(simulated.read_state(args.state), indent=2) + "\n")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------------
# Parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mig-parted", description="MIG partitioning: validate, plan and generate configs.")
    parser.add_argument("-d", "--debug", action="store_true", default=bool(_env("MIG_PARTED_DEBUG")))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def config_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--config-file", default=_env("MIG_PARTED_CONFIG_FILE"), help="config file, - for stdin")
        p.add_argument("-c", "--selected-config", default=_env("MIG_PARTED_SELECTED_CONFIG"))

    def backend_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--backend", choices=["nvml", "simulated"], default=_env("MIG_PARTED_BACKEND"), help="GPU backend"
        )
        p.add_argument("--sim-state", default=_env("MIG_SIM_STATE"), help="state file of a simulated host")
        p.add_argument("-d", "--debug", action="store_true", default=argparse.SUPPRESS)

    def mode_only_flag(p: argparse.ArgumentParser, help_text: str) -> None:
        p.add_argument("-m", "--mode-only", action="store_true", default=None, help=help_text)

    def change_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-k", "--hooks-file", default=_env("MIG_PARTED_HOOKS_FILE"))
        p.add_argument(
            "-s", "--skip-reset", action="store_true", default=None, help="do not reset GPUs after a mode change"
        )

    gpus_help = "GPUs as MODEL[xN],... e.g. H100-80GBx8, 0x233010DEx8 or A100-40GBx2,A30x2"
    p = sub.add_parser("validate", help="check a config file (and, with --gpus, that it fits)")
    config_flags(p)
    p.add_argument("--gpus", help=gpus_help)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="plan the instances and placements of a config on given GPUs")
    config_flags(p)
    p.add_argument("--gpus", required=True, help=gpus_help)
    p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("generate-config", help="generate NVIDIA's standard configs for given GPUs")
    p.add_argument("--gpus", required=True, help=gpus_help)
    p.add_argument(
        "-o", "--output-format", choices=["yaml", "json"], default=_env("MIG_PARTED_OUTPUT_FORMAT") or "yaml"
    )
    p.add_argument("-f", "--output-file", default=_env("MIG_PARTED_OUTPUT_FILE"))
    p.set_defaults(func=cmd_generate_config)

    p = sub.add_parser("apply", help="apply a MIG config to the node's GPUs (if necessary)")
    config_flags(p)
    mode_only_flag(p, "only change the MIG mode, do not configure instances")
    change_flags(p)
    backend_flags(p)
    p.set_defaults(
        func=cmd_apply, bool_envs={"mode_only": "MIG_PARTED_MODE_CHANGE_ONLY", "skip_reset": "MIG_PARTED_SKIP_RESET"}
    )

    p = sub.add_parser("assert", help="check that a MIG config is currently applied")
    config_flags(p)
    mode_only_flag(p, "only check the MIG mode")
    p.add_argument("-a", "--valid-config", action="store_true", default=None, help="only check the config is valid")
    backend_flags(p)
    p.set_defaults(
        func=cmd_assert,
        bool_envs={"mode_only": "MIG_PARTED_MODE_CHANGE_ONLY", "valid_config": "MIG_PARTED_VALID_CONFIG"},
    )

    p = sub.add_parser("export", help="export the node's current MIG state as a config")
    p.add_argument("-o", "--output-format", default=_env("MIG_PARTED_OUTPUT_FORMAT") or "yaml", help="yaml or json")
    p.add_argument("-l", "--config-label", default=_env("MIG_PARTED_CONFIG_LABEL") or "current")
    backend_flags(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("checkpoint", help="save the node's MIG state (modes, instances, placements) as JSON")
    p.add_argument("-f", "--checkpoint-file", default=_env("MIG_PARTED_CHECKPOINT_FILE"), help="- for stdout")
    backend_flags(p)
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("restore", help="restore a MIG state saved by checkpoint")
    p.add_argument("-f", "--checkpoint-file", default=_env("MIG_PARTED_CHECKPOINT_FILE"), help="- for stdin")
    mode_only_flag(p, "only restore the MIG mode")
    change_flags(p)
    backend_flags(p)
    p.set_defaults(
        func=cmd_restore, bool_envs={"mode_only": "MIG_PARTED_MODE_CHANGE_ONLY", "skip_reset": "MIG_PARTED_SKIP_RESET"}
    )

    p = sub.add_parser("sim", help="create or show a simulated GPU host")
    sim = p.add_subparsers(dest="sim_command", required=True, parser_class=_Parser)
    q = sim.add_parser("init", help="create (or replace) a simulated host")
    q.add_argument("--gpus", required=True, help=gpus_help)
    q.add_argument("--state", required=True, help="state file to write")
    q.add_argument(
        "--reboot-required-for-mode-change",
        action="store_true",
        help="GPUs behave like passthrough GPUs: a mode change needs a reboot",
    )
    q.set_defaults(func=cmd_sim_init)
    q = sim.add_parser("show", help="print a simulated host's state")
    q.add_argument("--state", required=True, help="state file to read")
    q.set_defaults(func=cmd_sim_show)
    return parser


def _fill_bool_envs(args: argparse.Namespace) -> None:
    """Boolean flags not given on the command line take their environment variable (like urfave/cli)."""
    for attr, env in getattr(args, "bool_envs", {}).items():
        if getattr(args, attr) is None:
            setattr(args, attr, _env_bool(env))


def mig_parted_main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    io = _Io(out or sys.stdout, err or sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        _fill_bool_envs(args)
        code: int = args.func(args, io)
        return code
    except UsageError as exc:
        print(f"error: {exc}", file=io.err)
        return EXIT_USAGE
    except PlanError as exc:
        print(f"error: {exc}", file=io.err)
        return EXIT_FAILED
    except _failures() as exc:  # the GPUs could not be read or changed
        print(f"error: {exc}", file=io.err)
        return EXIT_FAILED
    except MigManagerError as exc:  # unreadable or malformed input files
        print(f"error: {exc}", file=io.err)
        return EXIT_USAGE


def main() -> NoReturn:
    sys.exit(mig_parted_main())


def mig_manager_main(argv: Sequence[str] | None = None) -> int:
    """The `mig-manager` node agent (mig_manager.agent; imported here lazily, so mig-parted never loads it)."""
    agent_main = importlib.import_module("mig_manager.agent.main")
    code: int = agent_main.mig_manager_main(argv)
    return code


if __name__ == "__main__":
    main()
