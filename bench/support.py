"""What the operator benchmarks share: the operator as a process against an in-process kubesim, waits, ports and
/proc readings. Imported by the bench scripts (run from the repository root as `.venv/bin/python bench/<name>.py`,
which puts this folder on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
NS = "gpu-operator"
CRD = ROOT / "crds" / "nvidia.com_clusterpolicies.yaml"
# The operand images the operator renders (kubesim runs the MIG manager's as a node agent process).
IMAGES = {
    "MIG_MANAGER_IMAGE": "gpu-operator-mig/mig-manager:bench",
    "DEVICE_PLUGIN_IMAGE": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
    "GFD_IMAGE": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
    "DCGM_EXPORTER_IMAGE": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.2-4.8.1-distroless",
}

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, interval: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


class Operator:
    """`python -m gpu_operator run` against a simulated cluster (kubeconfig), with its metrics on a free port."""

    def __init__(self, kubeconfig: Path, log: Path, *extra_args: str) -> None:
        self.metrics_port = free_port()
        env = dict(os.environ, **IMAGES)
        env["PYTHONPATH"] = os.pathsep.join(str(ROOT / p) for p in ("operator", "node-agent", "sim"))
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gpu_operator",
                "run",
                f"--kubeconfig={kubeconfig}",
                f"--namespace={NS}",
                f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                "--health-probe-bind-address=",
                *extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )

    def metrics(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
                text = response.read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def writes(self) -> int:
        return int(sum(v for k, v in self.metrics().items() if k.startswith("gpu_operator_writes_total")))

    def reconciles(self) -> int:
        return int(self.metrics().get('gpu_operator_reconciles_total{result="success"}', 0))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
