"""The offline `mig-parted` commands: exit codes, output shapes and the messages users see."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mig_manager.cli import mig_parted_main, parse_gpus

CONFIG = """\
version: v1
mig-configs:
  all-balanced:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
  unknown-profile:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.5gb": 7}
  impossible:
    - devices: all
      mig-enabled: true
      mig-devices: {"2g.20gb": 3, "1g.10gb": 2}
  too-many:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 8}
  first-two:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices: {"7g.80gb": 1}
"""


def run(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = mig_parted_main(argv, out=out, err=err)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return str(path)


# ---------------------------------------------------------------------------------------------------------------------
# validate


def test_validate_valid_file(config: str) -> None:
    assert run(["validate", "-f", config]) == (0, "5 config(s) valid\n", "")


def test_validate_one_config_against_gpus(config: str) -> None:
    code, out, _ = run(["validate", "-f", config, "-c", "all-balanced", "--gpus", "H100-80GBx8"])
    assert (code, out) == (0, "config 'all-balanced' valid and fits the GPUs\n")


def test_validate_with_gpus_checks_every_config(config: str) -> None:
    code, _, err = run(["validate", "-f", config, "--gpus", "H100-80GBx2"])
    assert code == 1
    assert "config 'unknown-profile' on GPUs 0-1: profile 1g.5gb (did you mean" in err
    assert "is not available on H100-SXM5-80GB" in err
    assert "config 'too-many' on GPUs 0-1: requested 8 x 1g.10gb" in err
    assert "config 'all-balanced'" not in err


def test_validate_malformed_file_is_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('version: v1\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: "yes"\n')
    code, _, err = run(["validate", "-f", str(bad)])
    assert code == 1
    assert err.startswith("invalid: ") and "mig-enabled" in err and '"x"' in err


def test_validate_unknown_selected_config(config: str) -> None:
    code, _, err = run(["validate", "-f", config, "-c", "all-balancd"])
    assert code == 1 and "all-balancd" in err and "all-balanced" in err


# ---------------------------------------------------------------------------------------------------------------------
# plan


def test_plan_table(config: str) -> None:
    code, out, err = run(["plan", "-f", config, "-c", "all-balanced", "--gpus", "0x233010DEx8"])
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == "GPUs 0-7: NVIDIA H100 80GB HBM3 (0x233010DE), entry 0: MIG enabled, 4 GPU instances"
    assert "    3  3g.40gb          9  4:4        3g.40gb@0" in out


def test_plan_json_shape(config: str) -> None:
    code, out, _ = run(["plan", "-f", config, "-c", "first-two", "--gpus", "H100-80GBx3", "-o", "json"])
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"config", "fits", "gpus", "untouched", "notes"}
    assert (doc["config"], doc["fits"]) == ("first-two", True)
    gpu = doc["gpus"][0]
    assert set(gpu) == {
        "index", "model", "product_name", "pci_id", "entry", "mig_enabled", "fits", "error", "attempts", "instances",
        "devices",
    }  # fmt: skip
    assert gpu["instances"] == [
        {
            "profile": "7g.80gb",
            "profile_id": 0,
            "placement": {"start": 0, "size": 8},
            "compute_instances": [{"profile": "7g.80gb", "profile_id": 4, "start": 0, "size": 7}],
        }
    ]
    assert gpu["devices"] == {"7g.80gb": 1}
    assert doc["untouched"] == [{"index": 2, "pci_id": "0x233010DE", "product_name": "NVIDIA H100 80GB HBM3"}]


def test_plan_yaml(config: str) -> None:
    code, out, _ = run(["plan", "-f", config, "-c", "all-balanced", "--gpus", "H100-80GB", "-o", "yaml"])
    assert code == 0 and yaml.safe_load(out)["gpus"][0]["devices"] == {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "unknown-profile",
            ") is not available on H100-SXM5-80GB; valid names: 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, "
            "4g.40gb, 7g.80gb",
        ),
        ("impossible", "error: GPUs 0-1: 1g.10gb (instance 2 of 2) cannot be placed on H100-SXM5-80GB"),
        ("too-many", "error: GPUs 0-1: requested 8 x 1g.10gb but H100-SXM5-80GB allows at most 7"),
    ],
)
def test_plan_that_does_not_fit_exits_1_with_the_reason(config: str, name: str, message: str) -> None:
    code, out, err = run(["plan", "-f", config, "-c", name, "--gpus", "H100-80GBx2", "-o", "json"])
    assert code == 1
    assert message in err
    doc = json.loads(out)
    assert doc["fits"] is False and all(not g["fits"] and g["error"] for g in doc["gpus"])


def test_plan_of_a_profile_another_gpu_lacks(config: str) -> None:
    code, _, err = run(["plan", "-f", config, "-c", "all-balanced", "--gpus", "H100-80GB,A30"])
    assert code == 1 and err.startswith("error: GPU 1: profiles 3g.40gb (did you mean")
    assert "2g.20gb (did you mean" in err and "are not available on A30-PCIE-24GB" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "-c", "x", "--gpus", "H100"], "missing required flag -f/--config-file"),
        (["plan", "-f", "/nonexistent.yaml", "--gpus", "H100"], "/nonexistent.yaml"),
        (["plan", "-f", "CONFIG", "-c", "nope", "--gpus", "H100"], "nope"),
        (["plan", "-f", "CONFIG", "-c", "all-balanced", "--gpus", "H100-80Gx8"], "unknown GPU model 'H100-80G'"),
        (["plan", "-f", "CONFIG", "-c", "all-balanced", "--gpus", ""], "--gpus is empty"),
        (["plan", "-f", "CONFIG", "-c", "all-balanced", "--gpus", "H100", "-o", "xml"], "invalid choice: 'xml'"),
        (["plan", "-f", "CONFIG"], "--gpus"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(config: str, argv: list[str], message: str) -> None:
    code, _, err = run([config if a == "CONFIG" else a for a in argv])
    assert code == 2
    assert message in err


def test_plan_of_a_malformed_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: true\n      bogus: 1\n")
    code, _, err = run(["plan", "-f", str(bad), "--gpus", "H100"])
    assert code == 2 and "bogus" in err


def test_config_from_stdin_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIG_PARTED_SELECTED_CONFIG", "too-many")
    code, _, err = run(["plan", "-f", "-", "--gpus", "H100"], stdin=CONFIG)
    assert code == 1 and "requested 8 x 1g.10gb" in err
    monkeypatch.setenv("MIG_PARTED_CONFIG_FILE", "-")
    monkeypatch.setenv("MIG_PARTED_SELECTED_CONFIG", "all-balanced")
    assert run(["plan", "--gpus", "H100"], stdin=CONFIG)[0] == 0


# ---------------------------------------------------------------------------------------------------------------------
# generate-config and --gpus


def test_generate_config_yaml_and_json(tmp_path: Path) -> None:
    code, out, _ = run(["generate-config", "--gpus", "A100-80GBx2,A30x2"])
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["version"] == "v1"
    assert doc["mig-configs"]["all-1g.6gb"] == [
        {"device-filter": ["0x20B710DE"], "devices": "all", "mig-enabled": True, "mig-devices": {"1g.6gb": 4}}
    ]
    target = tmp_path / "out.json"
    assert run(["generate-config", "--gpus", "H100-80GB", "-o", "json", "-f", str(target)]) == (0, "", "")
    assert json.loads(target.read_text())["mig-configs"]["all-disabled"] == [{"devices": "all", "mig-enabled": False}]


def test_generate_config_without_mig_gpus_fails() -> None:
    code, _, err = run(["generate-config", "--gpus", "0x1EB810DE"])
    assert code == 1 and "no MIG-capable devices" in err


def test_gpu_spec_forms() -> None:
    gpus = parse_gpus("0x233010DE:0x16C010DEx2, NVIDIA A100-SXM4-40GB ,A30x1,0x1EB810DE")
    assert [g.index for g in gpus] == [0, 1, 2, 3, 4]
    assert str(gpus[0].pci) == "0x233010DE:0x16C010DE"
    assert [g.table.model if g.table else None for g in gpus] == [
        "H100-SXM5-80GB",
        "H100-SXM5-80GB",
        "A100-SXM4-40GB",
        "A30-PCIE-24GB",
        None,
    ]


def test_console_script_is_installed(config: str) -> None:
    exe = shutil.which("mig-parted", path=os.path.dirname(sys.executable))
    assert exe is not None, "make setup installs the mig-parted console script into the venv"
    proc = subprocess.run(
        [exe, "plan", "-f", config, "-c", "impossible", "--gpus", "H100"], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "cannot be placed" in proc.stderr
