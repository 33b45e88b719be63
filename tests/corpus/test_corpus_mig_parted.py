"""Bad mig-parted configs through `mig-parted validate/plan/apply` on a simulated host: the exit code, a message that
says what, where and what is valid, and the GPUs untouched (`mig-parted checkpoint` identical before and after)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from corpus_support import missing, params

from mig_manager.cli import mig_parted_main


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = mig_parted_main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 x H100 80GB with MIG enabled and all-balanced applied, so that a partial change would show."""
    d = tmp_path_factory.mktemp("host")
    state = d / "gpus.json"
    assert run(["sim", "init", "--gpus", "H100-80GBx2", "--state", str(state)])[0] == 0
    config = d / "start.yaml"
    config.write_text(
        "version: v1\nmig-configs:\n  start:\n    - devices: all\n      mig-enabled: true\n"
        '      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}\n'
    )
    code, _, err = run(["apply", "-f", str(config), "-c", "start", "--sim-state", str(state)])
    assert code == 0, err
    return state


def checkpoint(state: Path) -> str:
    code, out, err = run(["checkpoint", "--sim-state", str(state), "-f", "-"])
    assert code == 0, err
    return out


@pytest.mark.parametrize("case", params("mig_parted"))
def test_bad_mig_parted_config(case: dict[str, Any], host: Path, tmp_path: Path) -> None:
    state = tmp_path / "gpus.json"
    shutil.copy(host, state)
    config = tmp_path / "config.yaml"
    config.write_text(case["config"])
    argv = [case["command"], "-f", str(config)]
    if case.get("selected"):
        argv += ["-c", case["selected"]]
    if case.get("gpus"):
        argv += ["--gpus", case["gpus"]]
    if case["command"] == "apply":
        argv += ["--sim-state", str(state)]
    before = checkpoint(state)
    code, out, err = run(argv)
    assert checkpoint(state) == before, "the GPUs changed"
    assert code == case["exit"], f"exit {code}, want {case['exit']}:\n{out}{err}"
    assert not missing(err, case["expect"]), f"stderr lacks {missing(err, case['expect'])}:\n{err}"
