"""`make demo`: NVIDIA's documented MIG workflows 1 to 9 on a fresh simulated cluster, with the real helm and kubectl.

The demo starts kubesim's default topology (8x H100 80GB, 4x A100 40GB + 4x A100 80GB, 2x A30 passthrough, a node
without GPUs) in a temporary state folder, installs the chart, then labels nodes and upgrades the release as NVIDIA's
GPU Operator docs say, printing each command and its key output (node labels as JSON). The cluster and its folder are
removed at the end, also on failure or Ctrl-C. The steps and their checks are those of the e2e tests
(tests/e2e/e2e_workflows.py), so the demo fails exactly where a test would.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_workflows import TOOLS, WorkflowError, Workflows, cluster_config  # noqa: E402

from kubesim.server import KubeSim  # noqa: E402

STEPS = (
    Workflows.workflow_1_install,
    Workflows.workflow_2_single,
    Workflows.workflow_3_mixed,
    Workflows.workflow_4_reconfigure,
    Workflows.workflow_5_helm_config,
    Workflows.workflow_6_kubectl_config,
    Workflows.workflow_7_disable,
    Workflows.workflow_8_preinstalled_drivers,
    Workflows.workflow_9_reboot,
)


def main() -> int:
    for tool in ("helm", "kubectl"):
        if not (TOOLS / tool).exists():
            print(f"{TOOLS / tool} is missing: run `make tools` (make demo does it for you)", file=sys.stderr)
            return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-operator-mig-demo-") as tmp:
        print(f"Starting a simulated GPU cluster (kubesim, default topology) in {tmp}", flush=True)
        with KubeSim(cluster_config(state_dir=Path(tmp) / "kubesim")) as sim:
            print(f"export KUBECONFIG={sim.kubeconfig}   # while the demo runs", flush=True)
            workflows = Workflows(sim, Path(tmp) / "home")
            done = 0
            try:
                for step in STEPS:
                    t0 = time.monotonic()
                    step(workflows)
                    done += 1
                    print(f"-> workflow {done} done in {time.monotonic() - t0:.1f}s", flush=True)
            except (WorkflowError, OSError) as exc:
                print(f"\nFAILED in workflow {done + 1}: {exc}", file=sys.stderr, flush=True)
                return 1
            finally:
                print("\nStopping the simulated cluster", flush=True)
    print(f"\nAll {len(STEPS)} workflows passed in {time.monotonic() - started:.0f}s.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
