"""`kubesim up --topology FILE --detach`, `kubesim reboot NODE` and `kubesim down`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubesim.testing import TOOLS, wait_for

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGY = """
kind: Topology
nodes:
  - name: gpu-{i}
    count: 2
    gpus: A30x1
    passthrough: true
  - name: plain
"""


def kubesim(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("sim", "node-agent", "operator")))
    return subprocess.run(
        [sys.executable, "-m", "kubesim", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_detach_reboot_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY)
    up = kubesim("up", "--port", "0", "--state-dir", str(state), "--topology", str(topology), "--detach",
                 "--reboot-seconds", "0.5")  # fmt: skip
    assert up.returncode == 0, up.stderr
    lines = up.stdout.splitlines()
    assert lines[0].startswith("kubesim serving at http://127.0.0.1:")
    assert lines[1] == f"export KUBECONFIG={(state / 'kubeconfig').resolve()}"
    assert "kubectl get nodes" in up.stdout and "kubesim down" in up.stdout
    pid = int((state / "kubesim.pid").read_text())
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG=str(state / "kubeconfig"))

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TOOLS / "kubectl"), *args], capture_output=True, text=True, env=env, timeout=60)

    try:
        nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["gpu-0", "gpu-1", "plain"]
        reboot = kubesim("reboot", "gpu-1", "--state-dir", str(state))
        assert reboot.returncode == 0, reboot.stderr

        def boot_id() -> str:
            node = json.loads(kubectl("get", "node", "gpu-1", "-o", "json").stdout)
            ready = next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")
            return str(node["status"]["nodeInfo"]["bootID"]) if ready == "True" else ""

        wait_for(lambda: boot_id() == "sim-boot-1", 30, 0.05, "gpu-1 rebooted and Ready")
        assert (state / "nodes" / "gpu-1" / "gpus.json").exists()
    finally:
        down = kubesim("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert not (state / "kubesim.pid").exists()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
