"""Where the config comes from, and noticing that it changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mig_manager.agent.source import GENERATED_HEADER, ConfigSetupError, ConfigSource, choose_config
from mig_manager.devices.simulated import SimulatedBackend, init_host
from mig_manager.spec import load_spec_file


@pytest.fixture
def h100(tmp_path: Path) -> SimulatedBackend:
    return SimulatedBackend(init_host(tmp_path / "gpus.json", "H100x2"))


def test_custom_config_must_exist(tmp_path: Path, h100: SimulatedBackend) -> None:
    with pytest.raises(ConfigSetupError, match="failed to read custom config"):
        choose_config(str(tmp_path / "nope.yaml"), "", str(tmp_path / "gen.yaml"), h100)
    custom = tmp_path / "custom.yaml"
    custom.write_text("version: v1\nmig-configs: {}\n")
    assert choose_config(str(custom), "", str(tmp_path / "gen.yaml"), h100) == (str(custom), False)


def test_generated_from_the_gpus(tmp_path: Path, h100: SimulatedBackend) -> None:
    path, generated = choose_config("", "", str(tmp_path / "etc" / "generated.yaml"), h100)
    assert generated
    text = Path(path).read_text()
    assert text.startswith(GENERATED_HEADER)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    spec = load_spec_file(path).spec
    assert {"all-disabled", "all-enabled", "all-balanced", "all-1g.10gb"} <= set(spec.mig_configs)


def test_default_config_when_nothing_can_be_generated(tmp_path: Path) -> None:
    no_mig = SimulatedBackend(init_host(tmp_path / "gpus.json", "0x1EB810DEx1"))  # T4: no MIG
    default = tmp_path / "config-default.yaml"
    with pytest.raises(ConfigSetupError, match="no default config file"):
        choose_config("", str(default), str(tmp_path / "gen.yaml"), no_mig)
    default.write_text("version: v1\nmig-configs: {}\n")
    assert choose_config("", str(default), str(tmp_path / "gen.yaml"), no_mig) == (str(default), False)


def test_source_reloads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: false\n")
    source = ConfigSource(str(path))
    assert source.changed()
    first = source.current()
    assert first.spec is not None and list(first.spec.mig_configs) == ["a"]
    assert not source.changed()
    assert source.current() is first
    tmp = tmp_path / "new.yaml"  # a ConfigMap volume swaps the file
    tmp.write_text("version: v1\nmig-configs:\n  b:\n    - devices: all\n      mig-enabled: false\n")
    os.replace(tmp, path)
    assert source.changed()
    second = source.current()
    assert second.spec is not None and list(second.spec.mig_configs) == ["b"]
    assert second.digest != first.digest
    path.write_text("version: v1\nmig-configs: [oops\n")
    broken = source.current()
    assert broken.spec is None and broken.error and "config.yaml" in broken.error
    path.unlink()
    assert "cannot read the config file" in (source.current().error or "")
