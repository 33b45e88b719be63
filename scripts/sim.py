"""`make sim`: the simulated GPU cluster in the background with the chart installed; `make sim-down` stops it.

`make sim` starts `kubesim up --detach` (the default topology: 8x H100 80GB, 4x A100 40GB + 4x A100 80GB, 2x A30
passthrough, a node without GPUs) with its state in `.kubesim/`, installs the chart as the docs say (single MIG
strategy) unless a release is there already, and prints how to use kubectl and helm against it. A cluster that is
already running is left as it is; one stopped with `make sim-down` is removed, so the next `make sim` starts afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools" / "bin"
STATE = ROOT / ".kubesim"
KUBECONFIG = STATE / "kubeconfig"
NS = "gpu-operator"


def running() -> bool:
    pid_file = STATE / "kubesim.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def tool(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(KUBECONFIG))
    print(f"$ {name} {' '.join(args)}", flush=True)
    proc = subprocess.run([str(TOOLS / name), *args], env=env, cwd=ROOT, text=True, capture_output=True, check=False)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{name} failed ({proc.returncode})")
    return proc


def settled(timeout: float = 90.0) -> bool:
    """Wait (bounded) until the operator has labelled the MIG-capable nodes and every MIG manager has settled."""
    deadline = time.monotonic() + timeout
    env = dict(os.environ, KUBECONFIG=str(KUBECONFIG))
    while time.monotonic() < deadline:
        proc = subprocess.run(
            [str(TOOLS / "kubectl"), "get", "nodes", "-o", "json"], env=env, text=True, capture_output=True, check=False
        )
        if proc.returncode == 0:
            nodes = [n["metadata"].get("labels") or {} for n in json.loads(proc.stdout)["items"]]
            mig = [labels for labels in nodes if labels.get("nvidia.com/gpu.deploy.mig-manager") == "true"]
            if mig and all(labels.get("nvidia.com/mig.config.state") in ("success", "failed") for labels in mig):
                return True
        time.sleep(0.5)
    print(f"(the MIG managers have not settled within {timeout:.0f}s; the state labels follow)")
    return False


def kubesim(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "kubesim", *args], cwd=ROOT, check=False).returncode


def up() -> int:
    for name in ("helm", "kubectl"):
        if not (TOOLS / name).exists():
            print(f"{TOOLS / name} is missing: run `make tools`", file=sys.stderr)
            return 2
    if running():
        print(f"kubesim is already running (state in {STATE}).")
    else:
        STATE.mkdir(exist_ok=True)
        if kubesim("up", "--detach", "--port", "0", "--state-dir", str(STATE)) != 0:
            print(f"kubesim did not start: see {STATE / 'kubesim.log'}", file=sys.stderr)
            return 1
    releases = json.loads(tool("helm", "list", "-n", NS, "-o", "json").stdout or "[]")
    if releases:
        print(f"release {releases[0]['name']} is installed in {NS}.")
    else:
        install = ("install", "--wait", "--generate-name", "-n", NS, "--create-namespace", "charts/gpu-operator")
        print(tool("helm", *install, "--set", "mig.strategy=single").stdout)
    settled()
    columns = "nvidia.com/mig.capable,nvidia.com/mig.config,nvidia.com/mig.config.state"
    print(tool("kubectl", "get", "nodes", "-L", columns).stdout)
    print(
        f"""The simulated cluster runs in the background. To use it:

  export KUBECONFIG={KUBECONFIG}
  export PATH={TOOLS}:$PATH          # the real kubectl and helm
  kubectl get nodes -L nvidia.com/mig.config,nvidia.com/mig.config.state
  kubectl get pods -n {NS}
  kubectl label nodes node-h100 nvidia.com/mig.config=all-1g.10gb --overwrite
  kubectl get node node-h100 -w -L nvidia.com/mig.config,nvidia.com/mig.config.state
  kubectl logs -n {NS} -l app=nvidia-mig-manager -c nvidia-mig-manager
  .venv/bin/python -m kubesim reboot node-a30 --state-dir {STATE}

Stop it (and delete its state) with: make sim-down
"""
    )
    return 0


def down() -> int:
    code = kubesim("down", "--state-dir", str(STATE)) if running() else 0
    if code == 0 and STATE.exists():
        shutil.rmtree(STATE)
        print(f"removed {STATE}")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    return up() if parser.parse_args().command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
