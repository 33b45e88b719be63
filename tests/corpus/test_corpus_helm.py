"""Bad Helm values: `helm template` with the real helm fails, naming the value, and renders nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from corpus_support import missing, params

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gpu-operator"
HELM = Path(os.environ.get("KUBESIM_TOOLS", ROOT / ".tools" / "bin")) / "helm"


@pytest.mark.parametrize("case", params("helm"))
def test_bad_helm_values(case: dict[str, Any], tmp_path: Path) -> None:
    if not HELM.exists():
        pytest.skip(f"{HELM} is missing: run `make tools`")
    args = [str(HELM), "template", "gpu", str(CHART), "-n", "gpu-operator"]
    for item in case.get("set") or []:
        args += ["--set", item]
    if case.get("values") is not None:
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump(case["values"]))
        args += ["-f", str(values)]
    env = dict(os.environ, HOME=str(tmp_path), HELM_CACHE_HOME=str(tmp_path / "cache"))
    env.update(HELM_CONFIG_HOME=str(tmp_path / "config"), HELM_DATA_HOME=str(tmp_path / "data"))
    env.pop("KUBECONFIG", None)
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode != 0, f"helm template succeeded:\n{proc.stdout[:2000]}"
    assert proc.stdout == "", "helm rendered manifests although the values are bad"
    lacks = missing(proc.stderr, case["expect"])
    assert not lacks, f"stderr lacks {lacks}:\n{proc.stderr}"
