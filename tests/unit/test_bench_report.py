"""bench/report.py: docs/performance.md is what the committed results give, and the page says when a figure misses."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "report.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(module)
    return module


report = _load()


def test_committed_page_matches_the_committed_results() -> None:
    expected = report.render(report.load_results(ROOT / "bench" / "results"))
    committed = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert committed == expected, "docs/performance.md is stale: run .venv/bin/python bench/report.py"


def test_every_result_file_has_rows_and_every_known_benchmark_a_result() -> None:
    results = report.load_results(ROOT / "bench" / "results")
    assert set(report.KNOWN) <= set(results)
    page = report.render(results)
    for name in results:
        assert f"| {name} |" in page
    assert "n/a" not in page, "a figure the report reads is missing from its result file"


def test_a_missed_target_is_listed_with_its_figures() -> None:
    results = copy.deepcopy(report.load_results(ROOT / "bench" / "results"))
    results["agent"]["label_to_success"]["max_seconds"] = 2.5
    results["operator"]["operator_memory_mb"]["hwm"] = 300.0
    page = report.render(results)
    misses = page.split("## Targets missed", 1)[1].split("##", 1)[0]
    assert "label change to `success`" in misses and "max 2.500 s" in misses and "against < 2 s" in misses
    assert "operator memory (high-water mark): 300.0 MB" in misses
    assert "| **no** |" in page


def test_a_figure_missing_from_its_file_counts_as_a_miss() -> None:
    results = copy.deepcopy(report.load_results(ROOT / "bench" / "results"))
    del results["kubesim"]["list_nodes"]["median_ms"]
    page = report.render(results)
    assert "LIST of 1,000 nodes" in page.split("## Targets missed", 1)[1]


def test_an_unknown_result_file_gets_a_row(tmp_path: Path) -> None:
    (tmp_path / "future.json").write_text(json.dumps({"command": ".venv/bin/python bench/future.py"}))
    page = report.render(report.load_results(tmp_path))
    assert "| future | `bench/results/future.json` |" in page
    assert "`.venv/bin/python bench/future.py`" in page
    assert "No result file" in page and "`planner`" in page


def test_check_mode(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    results = ROOT / "bench" / "results"
    assert report.main(["--results", str(results), "-o", str(out), "--check"]) == 1
    assert report.main(["--results", str(results), "-o", str(out)]) == 0
    assert report.main(["--results", str(results), "-o", str(out), "--check"]) == 0


def test_scale_rows_list_a_slow_relabel_and_a_heavy_agent() -> None:
    results = copy.deepcopy(report.load_results(ROOT / "bench" / "results"))
    scale = results["scale"]
    scale["rounds"][0]["total_seconds"] = 75.0
    scale["agent_memory_mb"]["hwm_max"] = 90.0
    misses = report.render(results).split("## Targets missed", 1)[1].split("##", 1)[0]
    assert f"relabelled at once to `{scale['rounds'][0]['config']}`" in misses and "75.00 s" in misses
    assert "agent memory, each of" in misses and "max 90.0 MB" in misses
