"""The node commands of `mig-parted`: NVIDIA's flags and environment variables, messages, and exit codes
(0 success, 1 failure or mismatch, 2 usage errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from parted_support import cli, generated

from mig_manager.devices.simulated import SimulatedBackend, init_host, read_state
from mig_manager.spec import dump_spec


@pytest.fixture
def node(tmp_path: Path) -> tuple[str, str]:
    """A simulated 2 x H100 host and the generated config file: (state path, config path)."""
    state = tmp_path / "host.json"
    init_host(state, "H100x2")
    config = tmp_path / "config.yaml"
    config.write_text(dump_spec(generated("H100x2")))
    return str(state), str(config)


def test_apply_assert_cycle_with_flags(node: tuple[str, str]) -> None:
    state, config = node
    sim = ["--backend", "simulated", "--sim-state", state]
    code, out, err = cli(["assert", "-f", config, "-c", "all-balanced", *sim])
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "Assertion failure: selected configuration not currently applied",
        "  GPU 0 (H100-SXM5-80GB): MIG mode is disabled, the config wants it enabled",
        "  GPU 1 (H100-SXM5-80GB): MIG mode is disabled, the config wants it enabled",
    ]
    code, out, err = cli(["apply", "-f", config, "-c", "all-balanced", *sim])
    assert (code, out, err) == (0, "MIG configuration applied successfully\n", "")
    code, out, err = cli(["assert", "-f", config, "-c", "all-balanced", *sim])
    assert (code, out, err) == (0, "Selected MIG configuration currently applied\n", "")
    code, out, _ = cli(["assert", "-m", "-f", config, "-c", "all-balanced", *sim])
    assert (code, out) == (0, "Selected MIG mode settings from configuration currently applied\n")


def test_environment_variables(node: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, config = node
    monkeypatch.setenv("MIG_SIM_STATE", state)
    monkeypatch.setenv("MIG_PARTED_CONFIG_FILE", config)
    monkeypatch.setenv("MIG_PARTED_SELECTED_CONFIG", "all-1g.10gb")
    monkeypatch.setenv("MIG_PARTED_MODE_CHANGE_ONLY", "true")
    assert cli(["apply"])[0] == 0
    gpu0 = read_state(state)["gpus"][0]
    assert gpu0["mig_mode"] == {"current": "enabled", "pending": "enabled"}
    assert gpu0["gpu_instances"] == []
    assert cli(["assert"])[0] == 0  # mode only
    monkeypatch.setenv("MIG_PARTED_MODE_CHANGE_ONLY", "false")
    assert cli(["assert"])[0] == 1
    assert cli(["apply"])[0] == 0
    assert cli(["assert"])[0] == 0
    monkeypatch.setenv("MIG_PARTED_OUTPUT_FORMAT", "json")
    monkeypatch.setenv("MIG_PARTED_CONFIG_LABEL", "now")
    code, out, _ = cli(["export"])
    assert code == 0
    assert json.loads(out)["mig-configs"]["now"] == [
        {"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}
    ]
    monkeypatch.setenv("MIG_PARTED_CHECKPOINT_FILE", "-")
    code, out, _ = cli(["checkpoint"])
    assert code == 0 and json.loads(out)["Version"] == "v1"
    monkeypatch.setenv("MIG_PARTED_VALID_CONFIG", "1")
    assert cli(["assert", "-c", "all-balanced"]) == (0, "Selected MIG configuration is valid\n", "")


def test_valid_config_needs_no_gpus(node: tuple[str, str]) -> None:
    _, config = node
    assert cli(["assert", "-a", "-f", config, "-c", "all-balanced", "--sim-state", "/nonexistent"]) == (
        0,
        "Selected MIG configuration is valid\n",
        "",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["apply", "-c", "all-balanced"], "missing required flag -f/--config-file"),
        (["apply", "-f", "{config}"], "missing required flag 'selected-config' when more than one config available"),
        (
            ["apply", "-f", "{config}", "-c", "all-balancd"],
            'selected mig-config not present: "all-balancd"; did you mean',
        ),
        (["assert", "-f", "{config}", "-c", "nope"], "selected mig-config not present"),
        (["export", "-o", "xml"], "unrecognized 'output-format': xml; valid: yaml, json"),
        (
            ["apply", "-f", "{config}", "-c", "all-balanced", "--backend", "simulated", "--sim-state", ""],
            "needs --sim-state",
        ),
        (["apply", "-f", "{config}", "-c", "all-balanced", "--backend", "gpu"], "invalid choice: 'gpu'"),
        (["checkpoint"], "missing required flag -f/--checkpoint-file"),
        (["sim", "show", "--state", "/nonexistent/host.json"], "no simulated host at /nonexistent/host.json"),
        (["sim", "init", "--gpus", "H200x", "--state", "/tmp/x.json"], "--gpus entry 'H200x'"),
    ],
)
def test_usage_errors_exit_2(node: tuple[str, str], argv: list[str], message: str) -> None:
    state, config = node
    argv = [a.replace("{config}", config) for a in argv]
    if "--sim-state" not in argv and argv[0] != "sim":
        argv += ["--sim-state", state]
    code, out, err = cli(argv)
    assert code == 2, err
    assert message in err
    assert out == ""


def test_bad_boolean_environment_value(node: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, config = node
    monkeypatch.setenv("MIG_PARTED_SKIP_RESET", "maybe")
    code, _, err = cli(["apply", "-f", config, "-c", "all-balanced", "--sim-state", state])
    assert code == 2
    assert "MIG_PARTED_SKIP_RESET='maybe' is not a boolean" in err


def test_failures_exit_1(node: tuple[str, str], tmp_path: Path) -> None:
    state, _config = node
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: v1\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: true\n      mig-devices: {1g.5gb: 1}\n"
    )
    code, _, err = cli(["apply", "-f", str(bad), "--sim-state", state])
    assert code == 1
    assert err.startswith(
        "error: config 'x' cannot be applied; no GPU was touched\n  GPUs 0, 1 (H100-SXM5-80GB): profile 1g.5gb"
    )
    # reset required, with the skip-reset flag, on an Ampere host
    ampere = tmp_path / "a100.json"
    init_host(ampere, "A100-40GBx1")
    code, out, err = cli(["generate-config", "--gpus", "A100-40GBx1", "-f", str(tmp_path / "a.yaml")])
    code, out, err = cli(
        ["apply", "-s", "-f", str(tmp_path / "a.yaml"), "-c", "all-enabled", "--sim-state", str(ampere)]
    )
    assert code == 1
    assert "reset required" in err
    code, out, err = cli(["apply", "-f", str(tmp_path / "a.yaml"), "-c", "all-enabled", "--sim-state", str(ampere)])
    assert (code, out) == (0, "MIG configuration applied successfully\n")


def test_debug_shows_each_gpu(node: tuple[str, str]) -> None:
    state, config = node
    code, _out, err = cli(["-d", "apply", "-f", config, "-c", "all-7g.80gb", "--sim-state", state])
    assert code == 0
    assert "GPU 0 (H100-SXM5-80GB): configured: 7g.80gb@0:8[7g.80gb@0:7]" in err
    code, _out, err = cli(["assert", "-d", "-f", config, "-c", "all-7g.80gb", "--sim-state", state])
    assert "GPU 1 (H100-SXM5-80GB): matches" in err


def test_sim_init_and_show(tmp_path: Path) -> None:
    state = tmp_path / "host.json"
    code, out, err = cli(
        ["sim", "init", "--gpus", "A100-40GBx2", "--state", str(state), "--reboot-required-for-mode-change"]
    )
    assert (code, out) == (0, f"simulated host with 2 GPU(s) written to {state}\n"), err
    code, out, err = cli(["sim", "show", "--state", str(state)])
    assert code == 0, err
    shown = json.loads(out)
    assert [g["reboot_required"] for g in shown["gpus"]] == [True, True]
    assert SimulatedBackend(state).gpus()[0].product_name == "NVIDIA A100-SXM4-40GB"


def test_console_script_runs(node: tuple[str, str]) -> None:
    state, config = node
    result = subprocess.run(
        [sys.executable, "-m", "mig_manager.cli", "apply", "-f", config, "-c", "all-balanced", "--sim-state", state],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "MIG configuration applied successfully\n"
