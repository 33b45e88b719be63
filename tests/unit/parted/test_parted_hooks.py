"""Hooks (mig-facts 2.4): the file format, NVIDIA's hooks_test cases, the child environment, and the orchestration
of apply-start, pre-apply-mode, pre-apply-config and apply-exit around an apply."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from parted_support import cli, fresh, generated, mutations

from mig_manager.devices.simulated import SimulatedBackend, add_fault
from mig_manager.parted import (
    HookError,
    HookRunner,
    HooksFileError,
    HookSpec,
    HooksSpec,
    Outcome,
    apply_config,
    assert_config,
    hook_environment,
    hook_flag_env,
    load_hooks,
)
from mig_manager.parted.hooks import dump_hooks
from mig_manager.spec import dump_spec

FLAGS = hook_flag_env(
    config_file="/etc/config.yaml",
    selected_config="all-balanced",
    hooks_file="/etc/hooks.yaml",
    skip_reset=False,
    mode_only=True,
)


def _runner(hooks: dict[str, list[HookSpec]], output: io.StringIO | None = None) -> HookRunner:
    return HookRunner(HooksSpec("v1", {k: tuple(v) for k, v in hooks.items()}), FLAGS, output)


# ---------------------------------------------------------------------------------------------------------------------
# NVIDIA's hooks_test.go cases


def test_echo_hello_prints_exactly_hello() -> None:
    out = io.StringIO()
    _runner({"apply-start": [HookSpec("/bin/sh", ("-c", "echo Hello"))]}, out).run("apply-start")
    assert out.getvalue() == "Hello\n"


def test_a_missing_command_fails() -> None:
    with pytest.raises(HookError, match=r"hook apply-start\[0\] \(/doesnotexist\): cannot run"):
        _runner({"apply-start": [HookSpec("/doesnotexist")]}).run("apply-start")


def test_yaml_round_trip_of_a_two_hook_spec_is_lossless() -> None:
    spec = HooksSpec(
        "v1",
        {
            "apply-start": (
                HookSpec(
                    "/bin/bash",
                    ("-x", "-c", "source hooks.sh; apply-start ${MIG_PARTED_SELECTED_CONFIG}"),
                    {"A": "1"},
                    "/etc/nvidia-mig-manager",
                ),
                HookSpec("/bin/true"),
            ),
            "apply-exit": (HookSpec("/bin/echo", ("done",)),),
        },
    )
    assert load_hooks(dump_hooks(spec)) == spec


# ---------------------------------------------------------------------------------------------------------------------
# The file format


def test_nvidia_default_hooks_file_shape_parses() -> None:
    spec = load_hooks(
        """
version: v1
hooks:
  apply-start:
  - workdir: "/etc/nvidia-mig-manager"
    command: "/bin/bash"
    args: ["-x", "-c", "source hooks.sh; apply-start"]
    envs: {KEY: value}
    unknown-key: ignored
  pre-apply-mode:
  - command: /bin/true
"""
    )
    assert spec.version == "v1"
    assert spec.hooks["apply-start"][0] == HookSpec(
        "/bin/bash", ("-x", "-c", "source hooks.sh; apply-start"), {"KEY": "value"}, "/etc/nvidia-mig-manager"
    )
    assert spec.hooks["pre-apply-mode"] == (HookSpec("/bin/true"),)
    assert load_hooks("") == HooksSpec()
    assert load_hooks("version: v2\n").hooks == {}  # the version is not validated, as in NVIDIA's tool


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hooks: [", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping with 'version' and 'hooks', got a list"),
        ("hooks: 3\n", "hooks: must map hook names"),
        ("hooks:\n  apply-start: {command: /bin/true}\n", "hooks.apply-start: must be a list of hooks, got a mapping"),
        ("hooks:\n  apply-start: [/bin/true]\n", "hooks.apply-start[0]: each hook must be a mapping"),
        ("hooks:\n  apply-start: [{args: [x]}]\n", "hooks.apply-start[0]: missing required field 'command'"),
        ("hooks:\n  apply-start: [{command: /bin/x, args: -c}]\n", "hooks.apply-start[0].args: must be a list"),
        ("hooks:\n  apply-start: [{command: /bin/x, args: [1]}]\n", "hooks.apply-start[0].args[0]: must be a string"),
        ("hooks:\n  apply-start: [{command: /bin/x, envs: {A: 1}}]\n", "envs.A: must be a string, got the number 1"),
        ("hooks:\n  apply-start: [{command: /bin/x, envs: [A]}]\n", "envs: must be a mapping"),
        ("hooks:\n  apply-start: [{command: /bin/x, workdir: 3}]\n", "workdir: must be a string"),
    ],
)
def test_malformed_hooks_files_say_where(text: str, message: str) -> None:
    with pytest.raises(HooksFileError, match=None) as info:
        load_hooks(text, "hooks.yaml")
    assert str(info.value).startswith("hooks.yaml")
    assert message in str(info.value)


# ---------------------------------------------------------------------------------------------------------------------
# Running: environment, order, workdir


def _env_of(hook: HookSpec, flags: dict[str, str]) -> dict[str, str]:
    out = io.StringIO()
    HookRunner(HooksSpec("v1", {"apply-start": (hook,)}), flags, out).run("apply-start")
    return dict(line.split("=", 1) for line in out.getvalue().splitlines())


def test_child_gets_only_hook_envs_and_flag_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARENT_ONLY", "x")
    env = _env_of(HookSpec("/usr/bin/env", envs={"MY_VAR": "mine"}), FLAGS)
    assert env == {
        "MY_VAR": "mine",
        "MIG_PARTED_CONFIG_FILE": "/etc/config.yaml",
        "MIG_PARTED_SELECTED_CONFIG": "all-balanced",
        "MIG_PARTED_HOOKS_FILE": "/etc/hooks.yaml",
        "MIG_PARTED_SKIP_RESET": "false",
        "MIG_PARTED_MODE_CHANGE_ONLY": "true",
    }


def test_cli_derived_values_win_over_hook_envs() -> None:
    hook = HookSpec("/usr/bin/env", envs={"MIG_PARTED_SELECTED_CONFIG": "from-hook", "OTHER": "kept"})
    env = hook_environment(hook, FLAGS)
    assert env["MIG_PARTED_SELECTED_CONFIG"] == "all-balanced"
    assert env["OTHER"] == "kept"
    assert _env_of(hook, FLAGS)["MIG_PARTED_SELECTED_CONFIG"] == "all-balanced"


def test_unset_flags_are_empty_strings() -> None:
    flags = hook_flag_env(config_file=None, selected_config=None, hooks_file=None, skip_reset=True, mode_only=False)
    assert flags == {
        "MIG_PARTED_CONFIG_FILE": "",
        "MIG_PARTED_SELECTED_CONFIG": "",
        "MIG_PARTED_HOOKS_FILE": "",
        "MIG_PARTED_SKIP_RESET": "true",
        "MIG_PARTED_MODE_CHANGE_ONLY": "false",
    }


def test_a_bare_command_is_found_in_the_parent_path_and_runs_in_workdir(tmp_path: Path) -> None:
    out = io.StringIO()
    _runner({"apply-start": [HookSpec("pwd", workdir=str(tmp_path))]}, out).run("apply-start")
    assert out.getvalue().strip() == str(tmp_path)


def test_first_failing_hook_stops_the_list(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    runner = _runner(
        {
            "pre-apply-mode": [
                HookSpec("/bin/sh", ("-c", "echo oops >&2; exit 3")),
                HookSpec("/usr/bin/touch", (str(marker),)),
            ]
        }
    )
    with pytest.raises(HookError, match=r"hook pre-apply-mode\[0\] \(/bin/sh\): exited with status 3: oops"):
        runner.run("pre-apply-mode")
    assert not marker.exists()
    runner.run("not-configured")  # a missing name is a no-op


# ---------------------------------------------------------------------------------------------------------------------
# Orchestration around apply


def _logging_hooks(log: Path, fail: str | None = None) -> HooksSpec:
    hooks: dict[str, tuple[HookSpec, ...]] = {}
    for name in ("apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit"):
        script = f"echo {name} >> {log}" + ("; exit 1" if name == fail else "")
        hooks[name] = (HookSpec("/bin/sh", ("-c", script)),)
    return HooksSpec("v1", hooks)


def _ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_hooks_run_in_nvidias_order(tmp_path: Path, make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x2")
    configs = generated("H100x2")
    log = tmp_path / "log"
    assert apply_config(backend, configs, "all-balanced", hooks=HookRunner(_logging_hooks(log), FLAGS)).ok
    assert _ran(log) == ["apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit"]
    log.unlink()
    assert apply_config(fresh(backend), configs, "all-balanced", hooks=HookRunner(_logging_hooks(log), FLAGS)).ok
    assert _ran(log) == ["apply-start", "apply-exit"]  # nothing to change: no pre-apply hooks
    log.unlink()
    assert apply_config(fresh(backend), configs, "all-1g.10gb", hooks=HookRunner(_logging_hooks(log), FLAGS)).ok
    assert _ran(log) == ["apply-start", "pre-apply-config", "apply-exit"]


def test_apply_start_failure_aborts(tmp_path: Path, make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x2")
    log = tmp_path / "log"
    result = apply_config(
        backend, generated("H100x2"), "all-balanced", hooks=HookRunner(_logging_hooks(log, "apply-start"), FLAGS)
    )
    assert result.outcome == Outcome.FAILED
    assert result.message.startswith(
        "error running apply-start hook: hook apply-start[0] (/bin/sh): exited with status 1"
    )
    assert _ran(log) == ["apply-start"]
    assert mutations(backend) == []


def test_pre_apply_config_failure_rolls_back_the_mode_change(
    tmp_path: Path, make_host: Callable[..., SimulatedBackend]
) -> None:
    backend = make_host("H100x2")
    configs = generated("H100x2")
    log = tmp_path / "log"
    hooks = HookRunner(_logging_hooks(log, "pre-apply-config"), FLAGS)
    result = apply_config(backend, configs, "all-balanced", hooks=hooks)
    assert result.outcome == Outcome.FAILED
    assert result.message.startswith("error running pre-apply-config hook")
    assert _ran(log) == ["apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit"]
    assert assert_config(fresh(backend), configs, "all-disabled").ok


def test_pre_apply_mode_failure_changes_nothing(tmp_path: Path, make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x2")
    result = apply_config(
        backend,
        generated("H100x2"),
        "all-balanced",
        hooks=HookRunner(_logging_hooks(tmp_path / "l", "pre-apply-mode"), FLAGS),
    )
    assert result.outcome == Outcome.FAILED
    assert result.message.endswith("; nothing was changed")
    assert mutations(backend) == []


def test_apply_exit_failure_fails_a_successful_apply_only(
    tmp_path: Path, make_host: Callable[..., SimulatedBackend]
) -> None:
    backend = make_host("H100x2")
    configs = generated("H100x2")
    result = apply_config(
        backend, configs, "all-balanced", hooks=HookRunner(_logging_hooks(tmp_path / "a", "apply-exit"), FLAGS)
    )
    assert result.outcome == Outcome.FAILED
    assert result.message.startswith("error running apply-exit hook")
    assert assert_config(fresh(backend), configs, "all-balanced").ok  # the apply itself happened
    add_fault(backend.path, "create_gpu_instance", "UNKNOWN")
    result = apply_config(
        fresh(backend), configs, "all-1g.10gb", hooks=HookRunner(_logging_hooks(tmp_path / "b", "apply-exit"), FLAGS)
    )
    assert result.outcome == Outcome.FAILED
    assert result.message.startswith("GPU 0 (H100-SXM5-80GB): creating 1g.10gb at 0:1 failed (UNKNOWN)")
    assert result.details[-1].startswith("error running apply-exit hook")


def test_cli_hooks_see_the_flag_values(
    tmp_path: Path, make_host: Callable[..., SimulatedBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_host("H100x2")
    config = tmp_path / "config.yaml"
    config.write_text(dump_spec(generated("H100x2")))
    env_file = tmp_path / "env"
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(
        f"""
version: v1
hooks:
  apply-start:
    - command: /bin/sh
      args: ["-c", "/usr/bin/env > {env_file}"]
      envs: {{MIG_PARTED_SKIP_RESET: "from-hook", EXTRA: "1"}}
"""
    )
    monkeypatch.setenv("MIG_PARTED_SELECTED_CONFIG", "all-balanced")
    monkeypatch.setenv("MIG_PARTED_SKIP_RESET", "true")
    code, out, err = cli(["apply", "-f", str(config), "-k", str(hooks), "--sim-state", str(backend.path)])
    assert code == 0, err
    assert out == "MIG configuration applied successfully\n"
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    env.pop("PWD", None)  # set by /bin/sh itself
    assert env == {
        "EXTRA": "1",
        "MIG_PARTED_CONFIG_FILE": str(config),
        "MIG_PARTED_SELECTED_CONFIG": "all-balanced",
        "MIG_PARTED_HOOKS_FILE": str(hooks),
        "MIG_PARTED_SKIP_RESET": "true",
        "MIG_PARTED_MODE_CHANGE_ONLY": "false",
    }


def test_cli_malformed_hooks_file_is_a_usage_error(tmp_path: Path, make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x2")
    config = tmp_path / "config.yaml"
    config.write_text(dump_spec(generated("H100x2")))
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text("hooks:\n  apply-start: [{args: [x]}]\n")
    code, _, err = cli(
        ["apply", "-f", str(config), "-c", "all-balanced", "-k", str(hooks), "--sim-state", str(backend.path)]
    )
    assert code == 2
    assert err == f"error: {hooks}: hooks.apply-start[0]: missing required field 'command'\n"
    code, _, err = cli(
        [
            "apply",
            "-f",
            str(config),
            "-c",
            "all-balanced",
            "-k",
            str(tmp_path / "nope"),
            "--sim-state",
            str(backend.path),
        ]
    )
    assert code == 2
    assert "cannot read the hooks file" in err
    assert mutations(fresh(backend)) == []


def test_restore_hooks_see_the_restore_flags(tmp_path: Path, make_host: Callable[..., SimulatedBackend]) -> None:
    backend = make_host("H100x1")
    checkpoint = tmp_path / "cp.json"
    assert cli(["checkpoint", "-f", str(checkpoint), "--sim-state", str(backend.path)])[0] == 0
    env_file = tmp_path / "env"
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(
        f'hooks:\n  apply-exit:\n    - command: /bin/sh\n      args: ["-c", "/usr/bin/env > {env_file}"]\n'
    )
    code, out, err = cli(["restore", "-m", "-f", str(checkpoint), "-k", str(hooks), "--sim-state", str(backend.path)])
    assert (code, out) == (0, "MIG state restored successfully\n"), err
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    env.pop("PWD", None)
    assert env == {
        "MIG_PARTED_CHECKPOINT_FILE": str(checkpoint),
        "MIG_PARTED_HOOKS_FILE": str(hooks),
        "MIG_PARTED_SKIP_RESET": "false",
        "MIG_PARTED_MODE_CHANGE_ONLY": "true",
    }
