"""`make demo-planner`: the offline planner on an 8x H100 80GB node, through the real `mig-parted` command line."""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from mig_manager.cli import mig_parted_main

ROOT = Path(__file__).resolve().parents[1]
GPUS = "H100-80GBx8"


def run(*argv: str) -> int:
    print(f"\n$ mig-parted {' '.join(argv)}", flush=True)
    err = io.StringIO()  # the table already carries each GPU's reason; show stderr only for usage errors
    code = mig_parted_main(list(argv), out=sys.stdout, err=err)
    if code == 2:
        print(err.getvalue(), end="")
    print(f"(exit {code})", flush=True)
    return code


def main() -> int:
    custom = str(ROOT / "examples" / "custom-mig-config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        generated = str(Path(tmp) / "generated.yaml")
        codes = [run("generate-config", "--gpus", GPUS, "-f", generated)]
        print(f"(wrote {len(Path(generated).read_text().splitlines())} lines of configs to generated.yaml)")
        for config in ("all-1g.10gb", "all-balanced", "all-3g.40gb"):
            codes.append(run("plan", "-f", generated, "-c", config, "--gpus", GPUS))
        for config in ("five-1g-one-2g", "half-inference-half-training"):
            codes.append(run("plan", "-f", custom, "-c", config, "--gpus", GPUS))
        infeasible = run("plan", "-f", custom, "-c", "three-2g-two-1g", "--gpus", GPUS)
    # The demo succeeds when every feasible plan fits and the infeasible one is refused with exit 1.
    return 0 if all(c == 0 for c in codes) and infeasible == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
