"""`kubesim up`: serves until stopped, writes a kubeconfig, and keeps its state in --state-dir across restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kubesim.testing import TOOLS

ROOT = Path(__file__).resolve().parents[3]


def _up(state: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "sim"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "up", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("kubesim serving at http://127.0.0.1:"), first
    assert proc.stdout.readline().strip() == f"export KUBECONFIG={(state / 'kubeconfig').resolve()}"
    return proc


def _kubectl(state: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(home), KUBECONFIG=str(state / "kubeconfig"))
    return subprocess.run(
        [str(TOOLS / "kubectl"), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_up_serves_writes_a_kubeconfig_and_persists_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _up(state)
    try:
        created = _kubectl(state, tmp_path, "create", "configmap", "kept", "--from-literal=k=v")
        assert created.returncode == 0, created.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert (state / "state.json").exists()
    proc = _up(state)
    try:
        got = _kubectl(state, tmp_path, "get", "configmap", "kept", "-o", "jsonpath={.data.k}")
        assert got.returncode == 0 and got.stdout == "v", got.stderr
        namespaces = _kubectl(state, tmp_path, "get", "ns", "-o", "name").stdout.split()
        assert namespaces == [
            "namespace/default",
            "namespace/kube-node-lease",
            "namespace/kube-public",
            "namespace/kube-system",
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
