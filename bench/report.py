"""Write docs/performance.md from bench/results/*.json: one table of every benchmark figure with its target, the
measured value, whether it meets the target, and the command that measures it.

Run from the repository root after the benchmarks (`make bench` ends with it):

    .venv/bin/python bench/report.py            # writes docs/performance.md
    .venv/bin/python bench/report.py --check    # exit 1 if docs/performance.md is not what the results give

The page is a pure function of the result files (no clock, no machine state), so a test can check that the committed
page matches the committed results. A result file this script does not know still gets a row, saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUTPUT = ROOT / "docs" / "performance.md"
PY = ".venv/bin/python"

MISSING = object()
CLOSE = 0.85  # a figure using this much of its target is flagged as close to it


def get(data: Any, path: str, default: Any = MISSING) -> Any:
    """`data["a"]["b"]` for path "a.b"; `default` (or MISSING) when a key is absent."""
    for key in path.split("."):
        if not isinstance(data, Mapping) or key not in data:
            return default
        data = data[key]
    return data


def lim(value: Any) -> str:
    """A target or parameter: 80.0 -> "80"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return num(value)


def num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is MISSING or value is None:
        return "n/a (not in the result file)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value}{unit}"
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"
    return f"{text}{unit}"


@dataclass(frozen=True)
class Row:
    figure: str
    target: str
    measured: str
    meets: bool | None  # None: no target
    command: str
    note: str = ""
    used: float | None = None  # how much of the target the figure uses (1.0: at the limit)


def verdict(meets: bool | None) -> str:
    return "—" if meets is None else ("yes" if meets else "**no**")


def below(value: Any, limit: float) -> bool | None:
    return None if not isinstance(value, int | float) else value < limit


def at_least(value: Any, limit: float) -> bool | None:
    return None if not isinstance(value, int | float) else value >= limit


def used(value: Any, limit: Any, higher_is_better: bool = False) -> float | None:
    if not isinstance(value, int | float) or not isinstance(limit, int | float) or not value or not limit:
        return None
    return float(limit / value if higher_is_better else value / limit)


def missed(meets: bool | None, value: Any) -> bool | None:
    """A figure with a target but no value counts as a miss (the result file changed shape)."""
    return False if meets is None and (value is MISSING or value is None) else meets


# ---------------------------------------------------------------------------------------------------------------------
# One function per benchmark: its rows.


def planner_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/planner.py"
    target = get(d, "plan_node_timing.target_ms_per_model", 50.0)
    models = get(d, "plan_node_timing.models", []) or []
    rows = []
    if models:
        slowest = max(models, key=lambda m: m.get("median_ms", 0))
        worst_max = max(models, key=lambda m: m.get("max_ms", 0))
        errors = sum(len(m.get("gpu_errors") or []) for m in models)
        ok = all(m.get("meets_target") for m in models)
        rows.append(
            Row(
                f"`plan_node` of the default config ({get(d, 'parameters.gpus_per_node', 8)} GPUs), slowest of "
                f"{len(models)} models, median per pass",
                f"< {lim(target)} ms per model, no GPU error",
                f"{num(slowest['median_ms'], ' ms', 2)} ({slowest['model']}); worst single pass "
                f"{num(worst_max['max_ms'], ' ms', 2)} ({worst_max['model']}); {errors} GPU errors",
                ok,
                cmd,
                used=used(slowest["median_ms"], target),
            )
        )
    else:
        rows.append(Row("`plan_node` of the default config", f"< {lim(target)} ms per model", num(MISSING), False, cmd))
    geometries = get(d, "maximal_geometries.models", []) or []
    if geometries:
        counts: dict[str, list[str]] = {}
        for m in geometries:
            key = f"{get(m, 'maximal.all_profiles')} ({get(m, 'maximal.attribute_free_no_double_memory_1g')})"
            counts.setdefault(key, []).append(m["model"])
        text = "; ".join(
            f"{key}: {names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")
            for key, names in counts.items()
        )
        rows.append(
            Row(
                "maximal geometries per model, all profiles (attribute-free, no double-memory 1g)",
                "—",
                text,
                None,
                cmd,
                "checked against a brute-force search",
            )
        )
    summary = get(d, "infeasible_requests.summary.all", {}) or {}
    if summary:
        rows.append(
            Row(
                f"infeasible requests ({num(summary.get('searched'))} searched, "
                f"{num(summary.get('rejected_before_search'))} rejected before search): exact-search attempts",
                "—",
                f"geomean {num(get(summary, 'exact_attempts.geomean'), '', 1)}, "
                f"max {num(get(summary, 'exact_attempts.max'))}",
                None,
                cmd,
            )
        )
        for model in ("first_fit", "observed"):
            rows.append(
                Row(
                    f"mig-parted GI creations / exact attempts on those requests, `{model}` driver model",
                    "—",
                    f"geomean {num(get(summary, f'{model}.ratio_geomean'), '', 2)}, "
                    f"max {num(get(summary, f'{model}.ratio_max'), '', 1)}; "
                    f"GI creations up to {num(get(summary, f'{model}.gi_creations_max'))}",
                    None,
                    cmd,
                    "the units differ: a driver call against an in-memory bit test",
                )
            )
    return rows


def parted_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/parted.py"
    gpus = get(d, "parameters.gpus", "8 GPUs")
    config = get(d, "parameters.config", "all-balanced")
    rows = []
    cases = (("apply_from_disabled", f"apply `{config}` to {gpus} from MIG disabled"), ("noop_apply", "no-op apply"))
    for key, what in cases:
        rows.append(
            Row(
                f"{what} (library): wall time, median",
                "—",
                f"{num(get(d, f'library.{key}.wall.median_ms'), ' ms')}; "
                f"{num(get(d, f'library.{key}.calls.total'))} backend calls "
                f"({num(get(d, f'library.{key}.calls.mutating'))} mutating)",
                None,
                cmd,
            )
        )
        rows.append(
            Row(
                f"{what} (`mig-parted apply` process)",
                "—",
                num(get(d, f"cli.{key}.wall_ms"), " ms"),
                None,
                cmd,
                "includes the interpreter's start-up",
            )
        )
    return rows


def kubesim_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/kubesim_api.py"
    gets_target = get(d, "targets.gets_per_second", 1000)
    list_target = get(d, "targets.list_1000_nodes_ms", 100)
    seq = get(d, "gets_per_second.sequential")
    median = get(d, "list_nodes.median_ms")
    nodes = get(d, "list_nodes.nodes", 1000)
    return [
        Row(
            "GETs per second, one client, sequential",
            f">= {lim(gets_target)}",
            f"{num(seq)} (8 concurrent: {num(get(d, 'gets_per_second.concurrent_8'))})",
            missed(at_least(seq, gets_target), seq),
            cmd,
            used=used(seq, gets_target, higher_is_better=True),
        ),
        Row(
            f"LIST of {num(nodes)} nodes with {num(get(d, 'list_nodes.labels_per_node'))} labels each, median",
            f"< {lim(list_target)} ms",
            f"{num(median, ' ms')} (p90 {num(get(d, 'list_nodes.p90_ms'), ' ms')}; with the client's JSON decoding "
            f"{num(get(d, 'list_nodes.median_ms_including_client_json_decode'), ' ms')})",
            missed(below(median, list_target), median),
            cmd,
            used=used(median, list_target),
        ),
        Row(
            f"{num(get(d, 'watch_fanout.events'))} events to {num(get(d, 'watch_fanout.watchers'))} watchers: "
            "time until all delivered",
            "—",
            f"{num(get(d, 'watch_fanout.all_delivered_seconds'), ' s', 2)} "
            f"({num(get(d, 'watch_fanout.deliveries_per_second'))} deliveries/s)",
            None,
            cmd,
        ),
        Row(
            "API server memory: idle, with 1,000 nodes, peak (RSS)",
            "—",
            f"{num(get(d, 'server_memory_mb.idle_rss'), ' MB')}, "
            f"{num(get(d, 'server_memory_mb.with_1000_nodes_rss'), ' MB')}, "
            f"{num(get(d, 'server_memory_mb.peak_rss'), ' MB')}",
            None,
            cmd,
        ),
    ]


def kubesim_cluster_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/kubesim_cluster.py"
    rows = []
    for key, value in (get(d, "startup_seconds", {}) or {}).items():
        what = f"start-up of the simulated cluster, {key.replace('_', ' ')}"
        rows.append(Row(what, "—", num(value, " s", 3), None, cmd))
    trip = "gate_label_round_trip"
    rows.append(
        Row(
            f"gate label `paused-for-mig-change`: DaemonSet pod gone ({num(get(d, f'{trip}.rounds'))} rounds)",
            "—",
            f"median {num(get(d, f'{trip}.pause_to_pod_gone_ms.median'), ' ms')}, "
            f"max {num(get(d, f'{trip}.pause_to_pod_gone_ms.max'), ' ms')}",
            None,
            cmd,
        )
    )
    rows.append(
        Row(
            "gate label back to `true`: DaemonSet pod Ready again",
            "—",
            f"median {num(get(d, f'{trip}.restore_to_pod_ready_ms.median'), ' ms')}, "
            f"max {num(get(d, f'{trip}.restore_to_pod_ready_ms.max'), ' ms')}",
            None,
            cmd,
        )
    )
    return rows


def agent_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/agent.py"
    gpus = get(d, "parameters.gpus", "8 GPUs")
    target = get(d, "label_to_success.target_seconds", 2.0)
    worst = get(d, "label_to_success.max_seconds")
    mem_target = get(d, "idle.target_mb", 80.0)
    rss = get(d, "idle.rss_mb")
    cpu = get(d, "idle.cpu_percent")
    return [
        Row(
            f"label change to `success` on {gpus}, pods stopping at once",
            f"< {lim(target)} s",
            f"median {num(get(d, 'label_to_success.median_seconds'), ' s', 3)}, max {num(worst, ' s', 3)} "
            f"(with a MIG mode change: {num(get(d, 'label_to_success.mode_change_seconds'), ' s', 3)})",
            missed(below(worst, target), worst),
            cmd,
            used=used(worst, target),
        ),
        Row(
            "API writes per reconfiguration",
            "—",
            f"median {num(get(d, 'api_writes_per_reconfiguration.median'))}, "
            f"max {num(get(d, 'api_writes_per_reconfiguration.max'))}",
            None,
            cmd,
            "node patches plus Events",
        ),
        Row(
            f"idle agent memory (RSS after {lim(get(d, 'parameters.idle_seconds'))} s idle)",
            f"< {lim(mem_target)} MB",
            f"{num(rss, ' MB')} (peak {num(get(d, 'idle.peak_rss_mb'), ' MB')})",
            missed(below(rss, mem_target), rss),
            cmd,
            used=used(rss, mem_target),
        ),
        Row(
            "idle agent CPU",
            "0 % (no polling)",
            f"{num(cpu, ' %')} ({num(get(d, 'idle.cpu_seconds'), ' s', 2)} CPU)",
            missed(None if not isinstance(cpu, int | float) else cpu < 0.5, cpu),
            cmd,
        ),
    ]


def operator_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/operator.py"
    nodes = get(d, "nodes", 1000)
    target = get(d, "targets.converge_seconds", 60)
    mem_target = get(d, "targets.memory_mb", 250)
    converge = get(d, "converge_seconds")
    joins = get(d, "writes_per_later_event.gpu_node_joins")
    foreign = get(d, "writes_per_later_event.foreign_label_changes")
    hwm = get(d, "operator_memory_mb.hwm")
    o1 = None if not isinstance(joins, int | float) else joins <= 2 and (foreign or 0) <= 2
    return [
        Row(
            f"{num(nodes)} GPU nodes: all labelled and the ClusterPolicy ready",
            f"< {lim(target)} s",
            f"{num(converge, ' s', 2)} (after creating the nodes in {num(get(d, 'create_nodes_seconds'), ' s', 2)})",
            missed(below(converge, target), converge),
            cmd,
            used=used(converge, target),
        ),
        Row(
            "operator writes until converged",
            "—",
            f"{num(get(d, 'operator_writes_until_converged'))} "
            f"({num(get(d, 'operator_writes_per_node'), ' per node', 3)})",
            None,
            cmd,
        ),
        Row(
            "writes per later node event: a GPU node joins / a foreign label changes",
            "O(1)",
            f"{num(joins, '', 2)} / {num(foreign, '', 2)}",
            missed(o1, joins),
            cmd,
        ),
        Row(
            "operator memory (high-water mark)",
            f"< {lim(mem_target)} MB",
            f"{num(hwm, ' MB')} (RSS at the end {num(get(d, 'operator_memory_mb.rss_end'), ' MB')})",
            missed(below(hwm, mem_target), hwm),
            cmd,
            used=used(hwm, mem_target),
        ),
    ]


def scale_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = f"{PY} bench/scale.py"
    nodes = get(d, "parameters.nodes", 1000)
    agents = get(d, "parameters.agent_nodes", 50)
    converge_target = get(d, "targets.relabel_converge_seconds", 60)
    requests_target = get(d, "targets.api_requests_per_relabelled_node", 50)
    op_target = get(d, "targets.operator_memory_mb", 250)
    agent_target = get(d, "targets.agent_memory_mb", 80)
    rows = [
        Row(
            f"{num(nodes)} GPU nodes, {num(agents)} with agents: all labelled by the operator / agents at the default "
            "/ ClusterPolicy ready",
            "—",
            f"{num(get(d, 'operator_converge_seconds.all_nodes_labelled'), ' s', 2)} / "
            f"{num(get(d, 'operator_converge_seconds.all_agents_at_default'), ' s', 2)} / "
            f"{num(get(d, 'operator_converge_seconds.clusterpolicy_ready'), ' s', 2)}",
            None,
            cmd,
            "from the operator's start; includes starting the 50 agent processes",
        )
    ]
    rounds = get(d, "rounds", []) or []
    if not rounds:
        rows.append(
            Row(
                f"{num(agents)} agent nodes relabelled at once", f"< {lim(converge_target)} s", num(MISSING), False, cmd
            )
        )
    for r in rounds:
        config = r.get("config", "?")
        total = get(r, "total_seconds")
        rows.append(
            Row(
                f"{num(agents)} agent nodes relabelled at once to `{config}`: every node `success` with GFD's labels",
                f"< {lim(converge_target)} s",
                f"{num(total, ' s', 2)} (per node: median {num(get(r, 'seconds.median'), ' s', 2)}, "
                f"p90 {num(get(r, 'seconds.p90'), ' s', 2)})",
                missed(below(total, converge_target), total),
                cmd,
                used=used(total, converge_target),
            )
        )
        per_node = get(r, "api_requests.per_relabelled_node_all_clients")
        rows.append(
            Row(
                f"API requests per relabelled node (`{config}`), all clients / each agent's own",
                f"O(1): < {lim(requests_target)}",
                f"{num(per_node, '', 1)} / median {lim(get(r, 'api_requests.per_agent.median'))}, "
                f"max {num(get(r, 'api_requests.per_agent.max'))} (operator: "
                f"{num(get(r, 'api_requests.by_client.operator'))} requests, "
                f"{num(get(r, 'api_requests.operator_writes'))} writes)",
                missed(below(per_node, requests_target), per_node),
                cmd,
                used=used(per_node, requests_target),
            )
        )
    op_hwm = get(d, "operator_memory_mb.hwm")
    agent_hwm = get(d, "agent_memory_mb.hwm_max")
    rows += [
        Row(
            f"operator memory with {num(nodes)} nodes (high-water mark)",
            f"< {lim(op_target)} MB",
            f"{num(op_hwm, ' MB')} (RSS at the end {num(get(d, 'operator_memory_mb.rss_end'), ' MB')})",
            missed(below(op_hwm, op_target), op_hwm),
            cmd,
            used=used(op_hwm, op_target),
        ),
        Row(
            f"agent memory, each of {num(get(d, 'agent_memory_mb.agents'))} (high-water mark)",
            f"< {lim(agent_target)} MB",
            f"max {num(agent_hwm, ' MB')}, median {num(get(d, 'agent_memory_mb.hwm_median'), ' MB')}",
            missed(below(agent_hwm, agent_target), agent_hwm),
            cmd,
            used=used(agent_hwm, agent_target),
        ),
    ]
    return rows


def soak_rows(d: Mapping[str, Any]) -> list[Row]:
    cmd = "make soak"
    target = get(d, "targets.rounds", 1000)
    rounds, violations = get(d, "rounds"), get(d, "violations")
    meets = False
    if isinstance(rounds, int) and isinstance(violations, int):
        meets = rounds >= target and violations == 0
    actions = get(d, "actions", {}) or {}
    states = get(d, "node_states", {}) or {}
    return [
        Row(
            "chaos soak: rounds of relabelling, killed agents and operator, API and NVML faults, invariants after each",
            f">= {lim(target)} rounds, 0 violations",
            f"{num(rounds)} rounds, {num(violations)} violations (seed {get(d, 'seed')})",
            meets,
            cmd,
            "the same test runs 100 rounds in `make test`; docs/reliability.md",
        ),
        Row(
            "chaos soak: what the rounds did",
            "—",
            ", ".join(f"{k} {v}" for k, v in sorted(actions.items()))
            + "; node states after the rounds: "
            + ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
            None,
            cmd,
        ),
        Row(
            "chaos soak: round time (actions until every node settled for good)",
            "—",
            f"median {num(get(d, 'round_seconds.median'), ' s', 2)}, max {num(get(d, 'round_seconds.max'), ' s', 1)}, "
            f"total {num(get(d, 'round_seconds.total'), ' s', 0)}",
            None,
            cmd,
        ),
    ]


@dataclass(frozen=True)
class Bench:
    title: str
    issue: int
    rows: Callable[[Mapping[str, Any]], list[Row]]


KNOWN: dict[str, Bench] = {
    "planner": Bench("Planner (mig-parted configs, placement search)", 2, planner_rows),
    "parted": Bench("mig-parted apply on a simulated host", 3, parted_rows),
    "kubesim": Bench("kubesim API server", 4, kubesim_rows),
    "kubesim_cluster": Bench("kubesim simulated cluster", 5, kubesim_cluster_rows),
    "agent": Bench("Node agent (mig-manager)", 6, agent_rows),
    "operator": Bench("Operator", 7, operator_rows),
    "scale": Bench("Scale: 1,000 nodes, 50 agents relabelled at once", 10, scale_rows),
    "soak": Bench("Chaos soak", 10, soak_rows),
}


def machine(d: Mapping[str, Any]) -> str:
    m = get(d, "machine", {}) or {}
    cpus = m.get("cpus", m.get("cpu_count", "?"))
    when = get(d, "timestamp", get(d, "date", get(d, "started_at", "")))
    when = f", {str(when)[:10]}" if when and when is not MISSING else ""
    return f"{cpus} CPUs, Python {m.get('python', '?')}{when}"


def render(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The page, from result name (file stem) -> parsed JSON."""
    rows: list[tuple[str, Row]] = []
    runs: list[str] = []
    for name in [*[n for n in KNOWN if n in results], *sorted(n for n in results if n not in KNOWN)]:
        data = results[name]
        bench = KNOWN.get(name)
        if bench is None:
            rows.append(
                (
                    name,
                    Row(
                        f"`bench/results/{name}.json`",
                        "?",
                        "not described by bench/report.py yet",
                        None,
                        str(get(data, "command", "?")),
                        "add a section to bench/report.py",
                    ),
                )
            )
            runs.append(f"- `{name}`: {machine(data)}")
            continue
        rows.extend((name, r) for r in bench.rows(data))
        runs.append(f"- `{name}` (issue {bench.issue}): {machine(data)}")
    missing_known = [n for n in KNOWN if n not in results]

    out = [
        "# Performance",
        "",
        "Every benchmark figure of the project, with its target (from the acceptance items of the issues), the value",
        "measured and the command that measures it. Each command writes `bench/results/<name>.json`; this page is",
        "generated from those files by `.venv/bin/python bench/report.py` (the last step of `make bench`); do not edit",
        "it by hand. Figures without a target are reported for comparison between runs.",
        "",
        "| benchmark | figure | target | measured | meets | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        measured = r.measured + (f" ({r.note})" if r.note else "")
        out.append(f"| {name} | {r.figure} | {r.target} | {measured} | {verdict(r.meets)} | `{r.command}` |")
    out += ["", "## Targets missed", ""]
    misses = [(name, r) for name, r in rows if r.meets is False]
    if misses:
        out += [f"- {name}: {r.figure}: {r.measured} against {r.target}." for name, r in misses]
    else:
        out.append("None: every figure with a target meets it in the committed results.")
    close = sorted(((r.used, name, r) for name, r in rows if r.used is not None), key=lambda x: -x[0])
    if close:
        out += ["", "How much of each target the measured figure uses (100 % is at the limit), closest first:", ""]
        out += [
            f"- {name}: {r.figure}: {r.used:.0%} of {r.target}" + (" (close to its target)" if u >= CLOSE else "")
            for u, name, r in close
        ]
    if missing_known:
        out += ["", "No result file (the benchmark has not been run): " + ", ".join(f"`{n}`" for n in missing_known)]
    out += [
        "",
        "## Where the figures come from",
        "",
        "The machines the committed results were measured on (from each result file):",
        "",
        *runs,
        "",
        "Speed on a loaded 2-CPU machine varies by tens of percent between runs; the targets have wide margins for",
        "that reason. See `bench/README.md` for what each benchmark does and how its figures are defined.",
        "",
    ]
    return "\n".join(out)


def load_results(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the benchmark result files")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="only check that the output file is up to date")
    args = parser.parse_args(argv)
    text = render(load_results(args.results))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run {PY} bench/report.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
