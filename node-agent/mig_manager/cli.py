"""The `mig-parted` command line: NVIDIA's flags and environment variables, plus an offline planner.

Exit codes: 0 success, 1 the config is invalid or does not fit, 2 usage errors and unreadable or malformed files
(for `validate`, a malformed file is the answer "invalid" and exits 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

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
    return parser


def mig_parted_main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    io = _Io(out or sys.stdout, err or sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args, io)
        return code
    except UsageError as exc:
        print(f"error: {exc}", file=io.err)
        return EXIT_USAGE
    except PlanError as exc:
        print(f"error: {exc}", file=io.err)
        return EXIT_FAILED
    except MigManagerError as exc:  # unreadable or malformed input files
        print(f"error: {exc}", file=io.err)
        return EXIT_USAGE


def main() -> NoReturn:
    sys.exit(mig_parted_main())


if __name__ == "__main__":
    main()
