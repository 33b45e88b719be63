"""Test helpers: pytest fixtures that start kubesim on a free port, and runners for the real kubectl and helm.

Use from a conftest: `from kubesim.testing import kubesim, kubesim_tools  # noqa: F401`. Product code never imports
this module.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubesim.server import Config, KubeSim

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("KUBESIM_TOOLS", ROOT / ".tools" / "bin"))


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.02, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy, bounded by wall time; raise AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Tools:
    """The real kubectl and helm from `.tools/bin`, pointed at one kubesim, with a private HOME (discovery cache)."""

    sim: KubeSim
    home: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.home),
            KUBECONFIG=str(self.sim.kubeconfig),
            HELM_CACHE_HOME=str(self.home / ".cache" / "helm"),
            HELM_CONFIG_HOME=str(self.home / ".config" / "helm"),
            HELM_DATA_HOME=str(self.home / ".local" / "share" / "helm"),
        )
        return env

    def run(
        self, tool: str, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(TOOLS / tool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, stdin=stdin, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check, timeout=timeout)

    def popen(self, tool: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(TOOLS / tool), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env()
        )


def kube_client(sim: KubeSim) -> Any:
    """A `kubernetes.client.ApiClient` for this server (the real Python client, configured from the kubeconfig)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(sim.kubeconfig))  # type: ignore[no-untyped-call]


def events_of(sim: KubeSim, group: str, resource: str, name: str | None = None) -> list[tuple[str, str]]:
    """(type, name) of every event the store still remembers for one group-resource, in commit order."""

    def collect() -> list[tuple[str, str]]:
        assert sim.cluster is not None
        return [
            (e.type, e.new.name)
            for e in sim.cluster.store.history()
            if e.gr == (group, resource) and (name is None or e.new.name == name)
        ]

    return sim.call(collect)


@pytest.fixture
def kubesim() -> Iterator[KubeSim]:
    """A fresh kubesim per test, on a free port in its own thread; `kubesim.kubeconfig` points at it."""
    with KubeSim(Config(bookmark_interval=1.0)) as sim:
        yield sim


@pytest.fixture
def kubesim_tools(kubesim: KubeSim, tmp_path: Path) -> Tools:
    """kubectl and helm against the `kubesim` fixture: `kubesim_tools.kubectl("get", "ns")`."""
    home = tmp_path / "home"
    home.mkdir()
    return Tools(kubesim, home)


def cluster_config(topology: Any, **overrides: Any) -> Config:
    """A Config for a simulated cluster with the timings tests want: fast restarts, short reboots, quick GPU polls."""
    settings: dict[str, Any] = {
        "bookmark_interval": 1.0,
        "topology": topology,
        "restart_backoff": 0.2,
        "restart_backoff_max": 1.0,
        "reboot_seconds": 0.5,
        "gpu_poll_interval": 0.05,
    }
    settings.update(overrides)
    return Config(**settings)


@pytest.fixture
def kubesim_cluster() -> Iterator[KubeSim]:
    """kubesim with the default topology (node-h100, node-a100, node-a30, node-cpu) and fast timings."""
    with KubeSim(cluster_config("default")) as sim:
        yield sim
